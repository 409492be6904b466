// The console's overview panels and hourly charts (issue 17) in a real browser: Debian's Chromium
// via playwright-core, against the gateway built with buildApp, real Redis, two fake upstreams
// (one answering 503 until it is ejected, one with a ceiling) and the openai SDK as the client.
// Each panel shows a value the requests below make; axe finds no serious or critical violation;
// the pages are photographed at 1440 and 375 px (test-artifacts/console).
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildConsolePages, expectAccessible, expectFitsNarrow, launchChromium, screenshots } from '../helpers/browser.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const ADMIN_TOKEN = 'tg-admin-token-console-panels-0123456789';
const PREFIX = uniquePrefix('console-panels');
const NANO = 'gpt-4.1-nano';
const SUNSETTING = 'gpt-sunsetting';

let flaky: FakeUpstream;
let steady: FakeUpstream;
let gateway: TestGateway;
let browser: Browser;
let redis: Redis;
const secrets: Record<string, string> = {};

async function adminApi(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gateway.origin}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const client = (id: string): OpenAI => new OpenAI({ baseURL: gateway.url, apiKey: secrets[id], maxRetries: 0 });
/** A chat call with the fake upstream's usage fixed: `prompt` input tokens (`cached` of them cached), 5 output. */
const chat = (id: string, model: string, prompt: number, cached = 0, content = 'hello') =>
  client(id).chat.completions.create(
    { model, messages: [{ role: 'user', content }] },
    { headers: { 'x-fake-prompt-tokens': String(prompt), 'x-fake-cached-tokens': String(cached) } },
  );
/** Cost in nano-dollars at per-token nano prices: input, cached input, output. */
const nanoCost = (prices: readonly [number, number, number], prompt: number, cached: number, output: number): number =>
  (prompt - cached) * prices[0] + cached * prices[1] + output * prices[2];
const NANO_PRICES = [100, 25, 400] as const;
const SUNSETTING_PRICES = [100, 100, 400] as const;

beforeAll(async () => {
  buildConsolePages();
  flaky = await startFakeUpstream();
  steady = await startFakeUpstream();
  flaky.always({ status: 503 });
  gateway = await startGateway({
    upstreamUrl: 'http://127.0.0.1:9/v1',
    redisUrl: inject('redisUrl'),
    adminToken: ADMIN_TOKEN,
    config: {
      limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 },
      server: { unauthenticated_rpm: 1000 },
      models: { catalogue: [{ name: SUNSETTING, price_per_1m: { input: 0.1, output: 0.4 }, shutdown_date: '2099-01-01', successor: NANO }] },
      // `flaky` is preferred by weight and answers 503: ejected after two failures, for long.
      upstreams: [
        { id: 'flaky', url: flaky.url, weight: 100 },
        { id: 'steady', url: steady.url, ceiling: { rpm: 1000, tpm: 10_000_000 } },
      ],
      retry: { max_attempts: 2, base_backoff_ms: 1 },
      outlier_detection: { consecutive_failures: 2, base_ejection_ms: 600_000, max_ejection_ms: 600_000 },
    },
  });
  for (const [id, policy] of [
    ['warm', { tier: 'tier-5' }],
    ['hourly', { tier: 'tier-5', budget_usd: { monthly: 100 } }],
    ['repeat', { tier: 'tier-5', cache: {} }],
    ['tight', { tier: 'tier-5', limits: { rpm: 1 } }],
    ['broke', { tier: 'tier-5', budget_usd: { daily: 0.000001 } }],
    ['legacy', { tier: 'tier-5' }],
  ] as const) {
    const created = await adminApi('POST', '/keys', { id, ...policy });
    expect(created.status).toBe(201);
    secrets[id] = created.body.key as string;
  }
  browser = await launchChromium();
  redis = new Redis(inject('redisUrl'));
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await flaky?.close();
  await steady?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

describe('overview panels and hourly charts', () => {
  let context: BrowserContext;
  let page: Page;

  afterAll(() => context?.close());

  it('real requests through the gateway: every panel gets something to show; the admin signs in', async () => {
    // The flaky upstream is ejected after two failed attempts (the retry goes to the steady one).
    for (let i = 0; i < 4; i++) await chat('warm', NANO, 10).catch(() => undefined);
    expect(flaky.requests.length).toBeGreaterThanOrEqual(2);
    // Capped key (budget): its usage goes to Redis in the admission's settlement; 1,024 of 2,000 input tokens cached.
    await chat('hourly', NANO, 2000, 1024);
    await chat('hourly', NANO, 2000, 1024);
    // The same request twice on a key with the response cache: the second is a hit.
    const first = await chat('repeat', NANO, 1000, 0, 'the same question').withResponse();
    const second = await chat('repeat', NANO, 1000, 0, 'the same question').withResponse();
    expect([first.response.headers.get('x-tollgate-cache'), second.response.headers.get('x-tollgate-cache')]).toEqual(['miss', 'hit']);
    // One request a minute: the second is refused (rpm); a budget below one request's reservation refuses at once.
    await chat('tight', NANO, 10);
    await expect(chat('tight', NANO, 10)).rejects.toMatchObject({ status: 429 });
    await expect(chat('broke', NANO, 10)).rejects.toMatchObject({ status: 429, code: 'insufficient_quota' });
    // A model with a shutdown date ahead, called three times.
    for (let i = 0; i < 3; i++) await chat('legacy', SUNSETTING, 1000);

    context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    page = await context.newPage();
    await page.goto(`${gateway.origin}/console/`);
    await page.getByLabel('the admin token').check();
    await page.locator('#secret').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Overview');
    await expect.poll(() => page.locator('.loading').count()).toBe(0);
  }, 60_000);

  const panel = (name: string) => page.getByRole('region', { name });

  it('spend by model: the retiring model’s exact spend and tokens, this instance’s', async () => {
    const row = panel('Spend by model').locator('tr', { has: page.getByRole('rowheader', { name: SUNSETTING, exact: true }) });
    // 3 × (1,000 input at $0.10/1M + 5 output at $0.40/1M) = 306,000 nano-dollars.
    expect(3 * nanoCost(SUNSETTING_PRICES, 1000, 0, 5)).toBe(306_000);
    expect(await row.locator('td.spend').textContent()).toBe('$0.000306');
    expect(await row.locator('td').nth(1).textContent()).toBe('3,000 (0)');
    expect(await panel('Spend by model').locator('tbody tr', { has: page.getByRole('rowheader', { name: NANO, exact: true }) }).count()).toBe(1);
    expect(await panel('Spend by model').textContent()).toContain('This instance since');
  });

  it('429s by limit: one rpm refusal, one budget refusal', async () => {
    const count = (limit: string) => panel('429s by limit').locator(`tr[data-limit="${limit}"] td.count`).textContent();
    expect(await count('rpm')).toBe('1');
    expect(await count('budget')).toBe('1');
    expect(await panel('429s by limit').locator('tr[data-limit="rpm"] th').textContent()).toBe('Requests per minute');
  });

  it('cache savings: the provider’s prompt cache and tollgate’s response cache, to the nano-dollar', async () => {
    // Prompt cache: 2 × 1,024 cached tokens × ($0.10 − $0.025)/1M; response cache: the stored answer's whole cost.
    const prompt = 2 * 1024 * (NANO_PRICES[0] - NANO_PRICES[1]);
    const response = nanoCost(NANO_PRICES, 1000, 0, 5);
    expect([prompt, response]).toEqual([153_600, 102_000]);
    const savings = panel('Cache savings');
    expect(await savings.locator('li[data-source="prompt_cache"] .saved').textContent()).toBe('$0.0001536');
    expect(await savings.locator('li[data-source="response_cache"] .saved').textContent()).toBe('$0.000102');
    expect(await savings.locator('.saved-total').textContent()).toBe('$0.0002556');
    expect(await savings.textContent()).toContain('1 answer served from the response cache');
  });

  it('upstream health: the failing upstream ejected, the other healthy with its ceiling’s remaining requests', async () => {
    const health = panel('Upstream health');
    expect(await health.locator('tr[data-upstream="flaky"] .badge').textContent()).toMatch(/^(ejected|probing)$/);
    expect(Number(await health.locator('tr[data-upstream="flaky"] td').nth(1).textContent())).toBeGreaterThanOrEqual(1);
    expect(await health.locator('tr[data-upstream="steady"] .badge').textContent()).toBe('healthy');
    expect(await health.locator('tr[data-upstream="steady"] td.ceiling').textContent()).toMatch(new RegExp(`${NANO.replace(/\./g, '\\.')} requests: \\d`));
  });

  it('retired-model callers: the key, the model, its shutdown date, successor and request count', async () => {
    const row = panel('Callers of retiring models').locator('tbody tr').first();
    expect(await row.locator('th').textContent()).toBe('legacy');
    expect(await row.locator('td').allTextContents()).toEqual([SUNSETTING, '2099-01-01', NANO, '3']);
    await expectAccessible(page, 'overview-panels');
    await expectFitsNarrow(page);
    await screenshots(page, 'overview-panels');
  });

  it('the key page’s hourly chart: the last 24 hours and the last 7 days, exact spend', async () => {
    await page.goto(`${gateway.origin}/console/#/keys/hourly`);
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Key hourly');
    const hourly = page.getByRole('region', { name: 'By hour' });
    // 2 × (976 uncached + 1,024 cached input, 5 output) at gpt-4.1-nano's prices = 250,400 nano-dollars.
    expect(2 * nanoCost(NANO_PRICES, 2000, 1024, 5)).toBe(250_400);
    await expect.poll(() => hourly.locator('.hourly-total').textContent()).toBe('Last 24 hours: 2 requests, $0.000250');
    await expect.poll(() => hourly.locator('.chart canvas').count()).toBeGreaterThan(0);
    await hourly.getByLabel('Last 7 days').check();
    await expect.poll(() => hourly.locator('.hourly-total').textContent()).toBe('Last 7 days: 2 requests, $0.000250');
    // The plot's figures as a table: only hours with requests, their requests and tokens summing to the total.
    const rows = hourly.locator('details table tbody tr');
    const cells = await Promise.all((await rows.all()).map((row) => row.locator('td').allTextContents()));
    expect(cells.length).toBeGreaterThan(0);
    expect(cells.reduce((n, c) => n + Number(c[1]), 0)).toBe(2);
    expect(cells.map((c) => c[2]).join(' | ')).toMatch(/^\d+ \/ \d+ \/ \d+( \| \d+ \/ \d+ \/ \d+)?$/);
    const hours = (await (await page.request.get(`${gateway.origin}/console/api/keys/hourly/hourly?hours=168`)).json()) as { hours_kept: number; data: { cost_nano: number; cached_tokens: number }[] };
    expect(hours.data).toHaveLength(168);
    expect(hours.hours_kept).toBe(8 * 24);
    expect(hours.data.reduce((n, h) => n + h.cost_nano, 0)).toBe(250_400);
    expect(hours.data.reduce((n, h) => n + h.cached_tokens, 0)).toBe(2048);
    // In Redis: the hour's hash expires the retention (8 days by default) after its hour ends.
    const hashes = await redis.keys(`${PREFIX}*hourly*usage:h:*`);
    expect(hashes.length).toBeGreaterThanOrEqual(1);
    for (const hash of hashes) {
      const ttl = await redis.pttl(hash);
      // At least 8 days less the time since the settlement (at most the end of its hour less that time, plus 8 days).
      expect(ttl).toBeGreaterThan(8 * 86_400_000 - 600_000);
      expect(ttl).toBeLessThanOrEqual(8 * 86_400_000 + 3_600_000);
    }
    await expectAccessible(page, 'key-detail-hourly');
    await expectFitsNarrow(page);
    await screenshots(page, 'key-detail-hourly');
  });

  it('an uncapped key’s hourly usage too (counted in process, flushed), and the retiring model it calls, on its own self-service page', async () => {
    const own = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    try {
      const mine = await own.newPage();
      await mine.goto(`${gateway.origin}/console/`);
      await mine.getByLabel('my tollgate key').check();
      await mine.locator('#secret').fill(secrets.legacy as string);
      await mine.getByRole('button', { name: 'Sign in' }).click();
      await expect.poll(() => mine.getByRole('heading', { level: 1 }).textContent()).toBe('Key legacy');
      const hourly = mine.getByRole('region', { name: 'By hour' });
      await expect.poll(() => hourly.locator('.hourly-total').textContent()).toBe('Last 24 hours: 3 requests, $0.000306');
      expect(await mine.locator('.warning.retiring').textContent()).toBe(
        `This key still calls ${SUNSETTING}, which shuts down on 2099-01-01; move to ${NANO} (3 requests on this gateway instance since it started).`,
      );
      // The hourly endpoint of another key is not this session's.
      expect((await mine.request.get(`${gateway.origin}/console/api/keys/hourly/hourly`)).status()).toBe(403);
      await expectAccessible(mine, 'self-service-hourly');
      await screenshots(mine, 'self-service-hourly');
    } finally {
      await own.close();
    }
  });
});
