// The console (issue 17) in a real browser: Debian's Chromium via playwright-core, against the
// gateway built with buildApp, real Redis, the fake upstream and the openai SDK as the client.
// Every page is checked with axe-core and photographed at 1440 and 375 px (test-artifacts/console).
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildConsolePages, expectAccessible, expectFitsNarrow, launchChromium, screenshots } from '../helpers/browser.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const ADMIN_TOKEN = 'tg-admin-token-console-tests-0123456789';
const PREFIX = uniquePrefix('console');

let upstream: FakeUpstream;
let gateway: TestGateway;
let browser: Browser;
let redis: Redis;

beforeAll(async () => {
  buildConsolePages();
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    config: { limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 }, server: { unauthenticated_rpm: 1000 } },
  });
  browser = await launchChromium();
  redis = new Redis(inject('redisUrl'));
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await upstream?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

const client = (apiKey: string): OpenAI => new OpenAI({ baseURL: gateway.url, apiKey, maxRetries: 0 });
const chat = (apiKey: string) => client(apiKey).chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hello' }] });

async function adminApi(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gateway.origin}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function open(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${gateway.origin}/console/`);
  return { context, page };
}

async function signIn(page: Page, kind: 'admin' | 'key', secret: string): Promise<void> {
  await page.getByLabel(kind === 'admin' ? 'the admin token' : 'my tollgate key').check();
  await page.locator('#secret').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 });

describe('admin', () => {
  let context: BrowserContext;
  let page: Page;
  let keyId: string;
  let secret: string;

  beforeAll(async () => {
    ({ context, page } = await open());
  });
  afterAll(() => context?.close());

  it('signs in with the admin token into an httpOnly SameSite=Strict session; nothing in browser storage', async () => {
    await expect.poll(() => heading(page).textContent()).toBe('Sign in to tollgate');
    await expectAccessible(page, 'sign-in');
    await screenshots(page, 'sign-in');
    await signIn(page, 'admin', 'tg-wrong-token-0000000000');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Incorrect admin token');

    await signIn(page, 'admin', ADMIN_TOKEN);
    await expect.poll(() => heading(page).textContent()).toBe('Overview');
    const [cookie] = (await context.cookies()).filter((c) => c.name === 'tollgate_console');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/console', secure: false });
    expect(cookie?.value).not.toContain(ADMIN_TOKEN);
    const stored = String(await page.evaluate('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie'));
    expect(stored).not.toContain(ADMIN_TOKEN);
    expect(stored).not.toContain('tollgate_console');
  });

  it('creates a key, shows its secret once, and the secret works through the SDK', async () => {
    await page.getByRole('link', { name: 'Create a key' }).first().click();
    await expect.poll(() => heading(page).textContent()).toBe('Create a key');
    await expectAccessible(page, 'create');
    await screenshots(page, 'create');
    keyId = `web-${Date.now().toString(36)}`;
    await page.getByLabel('Key id').fill(keyId);
    await page.getByLabel('Tier', { exact: true }).selectOption('tier-2');
    await page.getByLabel('Team').fill('search');
    await page.getByRole('button', { name: 'Create' }).click();
    await expect.poll(() => heading(page).textContent()).toBe(`Key ${keyId} created`);
    secret = await page.locator('#secret-value').inputValue();
    expect(secret).toMatch(/^tg-/);
    await screenshots(page, 'secret-once');

    const answer = await chat(secret);
    expect(answer.choices[0]?.message.content).toBeTruthy();

    await page.getByRole('button', { name: 'I have stored it' }).click();
    await expect.poll(() => heading(page).textContent()).toBe(`Key ${keyId}`);
    expect(await page.content()).not.toContain(secret);
  });

  it('shows the usage and spend of that call on the key’s page', async () => {
    const today = page.locator('tbody tr', { has: page.getByRole('rowheader', { name: 'Today' }) });
    await expect.poll(() => today.locator('td.requests').textContent()).toBe('1');
    const spend = await today.locator('td.spend').textContent();
    expect(spend).toMatch(/^\$\d/);
    expect(spend).not.toBe('$0.00');
    await expect.poll(() => page.locator('.chart canvas').count()).toBeGreaterThan(0);
    await expectAccessible(page, 'key-detail');
    await expectFitsNarrow(page);
    await screenshots(page, 'key-detail');
  });

  it('shows the API’s validation error at the field, then saves a valid policy', async () => {
    const budget = page.getByLabel('Daily budget (US$)');
    await budget.fill('-5');
    await page.getByRole('button', { name: 'Save the policy' }).click();
    const error = page.locator('#f-budget-usd-daily-error');
    await expect.poll(() => error.textContent()).toContain("Invalid 'budget_usd.daily'");
    expect(await budget.getAttribute('aria-invalid')).toBe('true');
    expect(await budget.getAttribute('aria-describedby')).toContain('f-budget-usd-daily-error');
    await screenshots(page, 'key-detail-field-error');
    expect((await adminApi('GET', `/keys/${keyId}`)).body.budget_usd).toBeUndefined();

    await budget.fill('10');
    await page.getByRole('button', { name: 'Save the policy' }).click();
    await expect.poll(async () => (await adminApi('GET', `/keys/${keyId}`)).body.budget_usd).toEqual({ daily: 10 });
    await expect.poll(() => error.count()).toBe(0);
    expect((await adminApi('GET', `/keys/${keyId}`)).body.metadata).toEqual({ team: 'search' });
  });

  it('rotates: the new secret is shown once, the old one is refused, the new one works', async () => {
    await page.getByRole('button', { name: 'Rotate the secret' }).click();
    await expect.poll(() => page.locator('#secret-value').count()).toBe(1);
    const fresh = await page.locator('#secret-value').inputValue();
    expect(fresh).not.toBe(secret);
    await expect(chat(secret)).rejects.toMatchObject({ status: 401 });
    await chat(fresh);
    secret = fresh;
    await page.getByRole('button', { name: 'I have stored it' }).click();
    expect(await page.locator('#secret-value').count()).toBe(0);
  });

  it('revokes only after the id is typed', async () => {
    const revoke = page.getByRole('button', { name: 'Revoke' });
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel(/Type the key id/).fill('not-the-id');
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel(/Type the key id/).fill(keyId);
    await revoke.click();
    await expect.poll(() => page.locator('.facts .badge').textContent()).toBe('revoked');
    await expect(chat(secret)).rejects.toMatchObject({ status: 401 });
  });

  it('lists keys with search, filters and spend against budget; every admin page passes axe', async () => {
    await page.goto(`${gateway.origin}/console/#/keys`);
    await expect.poll(() => heading(page).textContent()).toBe('Keys');
    await expect.poll(() => page.locator('tbody tr').count()).toBeGreaterThan(1);
    await page.getByLabel('Search').fill(keyId);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    expect(await page.locator('tbody tr').textContent()).toContain('of $10.00 (daily)');
    await page.getByLabel('Status').selectOption('active');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(0);
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Status').selectOption('');
    await expectAccessible(page, 'keys');
    await expectFitsNarrow(page);
    await screenshots(page, 'keys');

    for (const [route, title, name] of [
      ['#/', 'Overview', 'overview'],
      ['#/cache', 'Response cache', 'cache'],
    ] as const) {
      await page.goto(`${gateway.origin}/console/${route}`);
      await expect.poll(() => heading(page).textContent()).toBe(title);
      await expect.poll(() => page.locator('.loading').count()).toBe(0);
      await expectAccessible(page, name);
      await expectFitsNarrow(page);
      await screenshots(page, name);
    }
    await page.getByRole('button', { name: 'Purge all entries' }).click();
    await expect.poll(() => page.getByRole('status').last().textContent()).toMatch(/^Purged \d+ entries\.$/);
  });

  it('refuses mutating calls without the session’s CSRF token, and sign-ins from another origin', async () => {
    const csrf = (await (await page.request.get(`${gateway.origin}/console/api/session`)).json()) as { csrf_token: string };
    const create = (headers: Record<string, string>) => page.request.post(`${gateway.origin}/console/api/admin/keys`, { headers, data: { id: 'csrf-victim', tier: 'free' } });
    for (const headers of [{}, { 'x-csrf-token': 'forged' }] as Record<string, string>[]) {
      const refused = await create(headers);
      expect(refused.status()).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('invalid_csrf_token');
    }
    expect((await adminApi('GET', '/keys/csrf-victim')).status).toBe(404);
    expect((await create({ 'x-csrf-token': csrf.csrf_token })).status()).toBe(201);

    const foreign = await fetch(`${gateway.origin}/console/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ admin_token: ADMIN_TOKEN }),
    });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('set-cookie')).toBeNull();
  });

  it('signs out: the session is gone on the server too', async () => {
    const cookie = (await context.cookies()).find((c) => c.name === 'tollgate_console');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => heading(page).textContent()).toBe('Sign in to tollgate');
    expect((await context.cookies()).find((c) => c.name === 'tollgate_console')).toBeUndefined();
    const replayed = await fetch(`${gateway.origin}/console/api/overview`, { headers: { cookie: `tollgate_console=${cookie?.value}` } });
    expect(replayed.status).toBe(401);
  });
});

describe('self-service', () => {
  let context: BrowserContext;
  let page: Page;
  let own: string;

  beforeAll(async () => {
    const mine = await adminApi('POST', '/keys', { id: 'team-b', tier: 'tier-1', budget_usd: { monthly: 5 }, models: ['gpt-4.1-nano'] });
    await adminApi('POST', '/keys', { id: 'team-c', tier: 'tier-1' });
    own = mine.body.key as string;
    await chat(own);
    ({ context, page } = await open());
  });
  afterAll(() => context?.close());

  it('signs in with its own key and sees only that key', async () => {
    await signIn(page, 'key', own);
    await expect.poll(() => heading(page).textContent()).toBe('Key team-b');
    await expect.poll(() => page.locator('.loading').count()).toBe(0);
    const text = (await page.locator('main').textContent()) ?? '';
    expect(text).toContain('gpt-4.1-nano');
    expect(text).toContain('monthly budget');
    expect(text).not.toContain('team-c');
    expect(await page.getByRole('link', { name: 'Keys' }).count()).toBe(0);
    await expectAccessible(page, 'self-service');
    await expectFitsNarrow(page);
    await screenshots(page, 'self-service');
  });

  it('cannot reach admin pages or other keys, by URL or by API with its cookie', async () => {
    await page.goto(`${gateway.origin}/console/#/keys/team-c`);
    await expect.poll(() => heading(page).textContent()).toBe('Key team-b');
    expect(await page.locator('main').textContent()).not.toContain('team-c');

    const { csrf_token: csrf } = (await (await page.request.get(`${gateway.origin}/console/api/session`)).json()) as { csrf_token: string };
    const forbidden = [
      await page.request.get(`${gateway.origin}/console/api/overview`),
      await page.request.get(`${gateway.origin}/console/api/admin/keys`),
      await page.request.get(`${gateway.origin}/console/api/admin/keys/team-c/usage`),
      await page.request.get(`${gateway.origin}/console/api/keys/team-c/history`),
      await page.request.post(`${gateway.origin}/console/api/admin/keys/team-c/rotate`, { headers: { 'x-csrf-token': csrf } }),
      await page.request.delete(`${gateway.origin}/console/api/admin/cache`, { headers: { 'x-csrf-token': csrf } }),
    ];
    for (const res of forbidden) {
      expect(res.status()).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('console_admin_only');
    }
    // The admin API itself takes no cookie.
    expect((await page.request.get(`${gateway.origin}/admin/keys`)).status()).toBe(401);
    const me = (await (await page.request.get(`${gateway.origin}/console/api/me`)).json()) as { id: string };
    expect(me.id).toBe('team-b');
  });

  it('ends the session when the key is rotated', async () => {
    await adminApi('POST', '/keys/team-b/rotate');
    expect((await page.request.get(`${gateway.origin}/console/api/me`)).status()).toBe(401);
    await page.reload();
    await expect.poll(() => heading(page).textContent()).toBe('Sign in to tollgate');
  });
});

describe('sign-in guard and switches', () => {
  it('throttles sign-ins per address like failed API keys, and sets Secure behind TLS', async () => {
    const guarded = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
      config: { limits: { key_prefix: `${PREFIX}g:` }, server: { unauthenticated_rpm: 3, trust_proxy: true } },
    });
    try {
      const attempt = (token: string) =>
        fetch(`${guarded.origin}/console/api/session`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' }, body: JSON.stringify({ admin_token: token }) });
      const ok = await attempt(ADMIN_TOKEN);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('set-cookie')).toMatch(/; Secure/);
      expect((await attempt('wrong-1')).status).toBe(401);
      expect((await attempt('wrong-2')).status).toBe(401);
      const throttled = await attempt(ADMIN_TOKEN);
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(throttled.headers.get('set-cookie')).toBeNull();
    } finally {
      await guarded.close();
      await deleteByPrefix(redis, `${PREFIX}g:`);
    }
  });

  it('is off without an admin token when self-service is off', async () => {
    const off = await startGateway({ upstreamUrl: upstream.url, config: { console: { self_service: false } } });
    try {
      expect((await fetch(`${off.origin}/console/`)).status).toBe(404);
      expect((await fetch(`${off.origin}/console/api/session`)).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});
