// The console's data API for the overview panels and the hourly charts (issue 17), over HTTP with
// real Redis, the fake upstream and the openai SDK: the `hours` bounds, hourly buckets switched
// off (usage.hourly_retention_days: 0), and the panels with metrics off.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const ADMIN_TOKEN = 'tg-admin-token-console-data-0123456789';
const PREFIX = uniquePrefix('console-data');
let upstream: FakeUpstream;
let redis: Redis;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await upstream?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

/** An admin's console session cookie. */
async function adminSession(gateway: TestGateway): Promise<string> {
  const res = await fetch(`${gateway.origin}/console/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ admin_token: ADMIN_TOKEN }) });
  expect(res.status).toBe(200);
  return (res.headers.get('set-cookie') ?? '').split(';')[0] as string;
}

async function get<T>(gateway: TestGateway, cookie: string, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${gateway.origin}/console/api/${path}`, { headers: { cookie } });
  return { status: res.status, body: (await res.json()) as T };
}

interface Hourly {
  hours_kept: number;
  data: { hour: string; requests: number; cost_nano: number }[];
}

describe('hourly usage over the console API', () => {
  let gateway: TestGateway;
  let cookie: string;
  beforeAll(async () => {
    gateway = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
      config: { limits: { key_prefix: `${PREFIX}a:` }, usage: { hourly_retention_days: 2 } },
    });
    cookie = await adminSession(gateway);
  });
  afterAll(() => gateway?.close());

  it('24 hours unless asked; at most the retention’s hours; the current hour last', async () => {
    await gateway.client().chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
    const byDefault = await get<Hourly>(gateway, cookie, 'keys/test-key/hourly');
    expect(byDefault.status).toBe(200);
    expect(byDefault.body.hours_kept).toBe(48);
    expect(byDefault.body.data).toHaveLength(24);
    const last = byDefault.body.data.at(-1);
    expect(Date.parse(last?.hour ?? '')).toBe(Math.floor(Date.now() / 3_600_000) * 3_600_000);
    // Across an hour boundary the request may sit in the hour before: the sum is what counts.
    expect(byDefault.body.data.reduce((n, h) => n + h.requests, 0)).toBe(1);
    expect(byDefault.body.data.reduce((n, h) => n + h.cost_nano, 0)).toBeGreaterThan(0);
    for (const [asked, got] of [
      ['168', 48],
      ['3', 3],
      ['0', 24],
      ['-2', 24],
      ['1.5', 24],
      ['lots', 24],
    ] as const) {
      expect((await get<Hourly>(gateway, cookie, `keys/test-key/hourly?hours=${asked}`)).body.data).toHaveLength(got);
    }
    const unknown = await get<{ error: { code: string } }>(gateway, cookie, 'keys/nobody/hourly');
    expect(unknown.status).toBe(404);
    // Without a session: 401.
    expect((await fetch(`${gateway.origin}/console/api/keys/test-key/hourly`)).status).toBe(401);
  });
});

describe('hourly usage switched off', () => {
  it('usage.hourly_retention_days: 0 writes no hour hashes, and the API says none are kept', async () => {
    const gateway = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
      config: { limits: { key_prefix: `${PREFIX}off:` }, usage: { hourly_retention_days: 0 } },
    });
    try {
      await gateway.client().chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
      const cookie = await adminSession(gateway);
      // The daily history has the request (the recorder flushed first): the hour hashes were never written.
      const days = await get<{ data: { requests: number }[] }>(gateway, cookie, 'keys/test-key/history?days=2');
      expect(days.body.data.reduce((n, d) => n + d.requests, 0)).toBe(1);
      expect(await redis.keys(`${PREFIX}off:*usage:h:*`)).toEqual([]);
      expect(await redis.keys(`${PREFIX}off:*usage:d:*`)).toHaveLength(1);
      const hourly = await get<Hourly>(gateway, cookie, 'keys/test-key/hourly');
      expect(hourly.body).toMatchObject({ hours_kept: 0, data: [] });
    } finally {
      await gateway.close();
    }
  });
});

describe('overview panels with metrics off', () => {
  it('say so; 429s are still counted (under `all`, without per-key labels)', async () => {
    const gateway = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
      config: { limits: { key_prefix: `${PREFIX}m:` }, metrics: { enabled: false, per_key_labels: false }, keys: [{ id: 'test-key', key: 'tg-console-data-one-rpm-0123456789', tier: 'tier-1', limits: { rpm: 1 } }] },
    });
    try {
      const client = gateway.client({ apiKey: 'tg-console-data-one-rpm-0123456789' });
      const ask = () => client.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
      await ask();
      await expect(ask()).rejects.toMatchObject({ status: 429 });
      const cookie = await adminSession(gateway);
      const panels = await get<Record<string, unknown>>(gateway, cookie, 'overview/panels');
      expect(panels.status).toBe(200);
      expect(panels.body).toMatchObject({ scope: 'instance', metrics_enabled: false, per_key_labels: false, spend_by_model: [], rate_limited: [{ limit: 'rpm', count: 1 }], upstreams: [{ id: 'default', state: 'healthy' }] });
    } finally {
      await gateway.close();
    }
  });
});

describe('retiring-model callers without per-key labels', () => {
  it('the admin panel lists every key’s calls together (no key id); a key’s own page gets no warning it cannot attribute', async () => {
    const own = 'tg-console-data-sunset-0123456789';
    const gateway = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
      config: {
        limits: { key_prefix: `${PREFIX}p:` },
        metrics: { per_key_labels: false },
        models: { catalogue: [{ name: 'gpt-sunsetting', price_per_1m: { input: 0.1, output: 0.4 }, shutdown_date: '2099-01-01', successor: 'gpt-4.1-nano' }] },
        keys: [{ id: 'sunset-key', key: own, tier: 'tier-1' }],
      },
    });
    try {
      await gateway.client({ apiKey: own }).chat.completions.create({ model: 'gpt-sunsetting', messages: [{ role: 'user', content: 'hi' }] });
      const panels = await get<{ retired_callers: unknown[] }>(gateway, await adminSession(gateway), 'overview/panels');
      expect(panels.body.retired_callers).toEqual([{ key: null, model: 'gpt-sunsetting', shutdown_date: '2099-01-01', successor: 'gpt-4.1-nano', requests: 1 }]);

      const signIn = await fetch(`${gateway.origin}/console/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: own }) });
      expect(signIn.status).toBe(200);
      const me = await get<{ id: string; retiring_models: unknown[] }>(gateway, (signIn.headers.get('set-cookie') ?? '').split(';')[0] as string, 'me');
      expect(me.body).toMatchObject({ id: 'sunset-key', retiring_models: [] });
    } finally {
      await gateway.close();
    }
  });
});

describe('upstream ceiling refusals', () => {
  it('count per upstream in the 429 panel, beside the keys’ own limits', async () => {
    const gateway = await startGateway({
      upstreamUrl: 'http://127.0.0.1:9/v1',
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN_TOKEN,
      config: { limits: { key_prefix: `${PREFIX}c:` }, upstreams: [{ id: 'only', url: upstream.url, api_key: UPSTREAM_KEY, ceiling: { rpm: 1 } }] },
    });
    try {
      const ask = () => gateway.client().chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
      await ask();
      await expect(ask()).rejects.toMatchObject({ status: 429 });
      const panels = await get<{ ceiling_refusals: unknown[]; upstreams: { id: string; ceiling: { model: string; limit: string; remaining: number }[] }[] }>(
        gateway,
        await adminSession(gateway),
        'overview/panels',
      );
      expect(panels.body.ceiling_refusals).toEqual([{ upstream: 'only', count: 1 }]);
      expect(panels.body.upstreams).toEqual([{ id: 'only', state: 'healthy', ejections: 0, ceiling: [{ model: 'gpt-4.1-nano', limit: 'requests', remaining: 0 }] }]);
    } finally {
      await gateway.close();
    }
  });
});
