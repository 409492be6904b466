// Issue 6: a response cache error is a miss, never a failure. With its Redis killed, a gateway
// keeps answering requests of cached keys (from the upstream, as misses), counts the store's
// errors, and logs the failure once. The admin routes purge all entries or one key's.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callsTo, metricValue, post } from '../helpers/cache.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const MODEL = 'gpt-4.1-nano';
const CHAT = '/v1/chat/completions';
const ALPHA = 'tg-cache-fail-alpha-0123456789abcdef';
const BETA = 'tg-cache-fail-beta-0123456789abcdef';
const ADMIN = 'admin-token-for-cache-tests-0123456789';
const KEYS = [
  { id: 'alpha', key: ALPHA, tier: 'tier-1' as const, cache: { ttl_s: 60 } },
  { id: 'beta', key: BETA, tier: 'tier-1' as const, cache: { ttl_s: 60 } },
];

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

describe('with Redis killed', () => {
  let redis: RedisServer;
  let gw: TestGateway;
  beforeAll(async () => {
    redis = await startRedisServer();
    gw = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: redis.url,
      // The limiter's own policy decides about limits; fail_open keeps it serving too.
      config: { keys: KEYS, limits: { key_prefix: uniquePrefix('cache-fail'), on_redis_error: 'fail_open', redis_timeout_ms: 200 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('still serves every request, as misses, and counts the store errors', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'served while redis is gone' }] };
    expect((await post(gw, CHAT, ALPHA, body)).headers.get('x-tollgate-cache')).toBe('miss');
    expect((await post(gw, CHAT, ALPHA, body)).headers.get('x-tollgate-cache')).toBe('hit');
    upstream.reset();
    redis.kill('SIGKILL');
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await post(gw, CHAT, ALPHA, body));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(answers.map((a) => a.headers.get('x-tollgate-cache'))).toEqual(['miss', 'miss', 'miss', 'miss']);
    expect(callsTo(upstream, CHAT)).toBe(4);
    // A streamed request too.
    const streamed = await post(gw, CHAT, ALPHA, { ...body, stream: true });
    expect(streamed.status).toBe(200);
    expect(streamed.text).toContain('data: [DONE]');

    const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
    expect(metricValue(metrics, 'tollgate_response_cache_errors_total', { during: 'get' })).toBeGreaterThanOrEqual(5);
    expect(metricValue(metrics, 'tollgate_requests_total', { key: 'alpha', cache: 'miss', status_class: '2xx' })).toBeGreaterThanOrEqual(6);
    expect(gw.logs.filter((l) => l.msg === 'response cache store failed: serving as misses')).toHaveLength(1);
  });
});

describe('purging (admin routes)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      upstreamUrl: upstream.url,
      redisUrl: inject('redisUrl'),
      adminToken: ADMIN,
      config: { keys: KEYS, limits: { key_prefix: uniquePrefix('cache-purge') } },
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  const purge = (path: string, token = ADMIN) => fetch(`${gw.origin}${path}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  const outcome = async (secret: string, content: string) =>
    (await post(gw, CHAT, secret, { model: MODEL, messages: [{ role: 'user', content }] })).headers.get('x-tollgate-cache');

  it('purges one key’s entries, then all of them', async () => {
    for (const secret of [ALPHA, BETA]) for (const content of ['one', 'two']) expect(await outcome(secret, content)).toBe('miss');
    expect(await outcome(ALPHA, 'one')).toBe('hit');

    const one = await purge('/admin/cache/keys/alpha');
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual({ object: 'cache.purge', key_id: 'alpha', group: null, purged: 2 });
    expect(await outcome(ALPHA, 'one')).toBe('miss');
    expect(await outcome(BETA, 'one')).toBe('hit');

    const all = await purge('/admin/cache');
    expect(await all.json()).toEqual({ object: 'cache.purge', purged: 3 });
    expect(await outcome(BETA, 'two')).toBe('miss');
  });

  it('a key created through the admin API can have a cache, purged by its id; a revoked key is unknown', async () => {
    const created = await fetch(`${gw.origin}/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'runtime-cached', tier: 'tier-1', cache: { ttl_s: 60 } }),
    });
    expect(created.status).toBe(201);
    const secret = ((await created.json()) as { key: string }).key;
    expect(await outcome(secret, 'run-time one')).toBe('miss');
    expect(await outcome(secret, 'run-time one')).toBe('hit');
    const purged = await purge('/admin/cache/keys/runtime-cached');
    expect(await purged.json()).toEqual({ object: 'cache.purge', key_id: 'runtime-cached', group: null, purged: 1 });
    expect(await outcome(secret, 'run-time one')).toBe('miss');
    const revoked = await fetch(`${gw.origin}/admin/keys/runtime-cached`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(revoked.status).toBe(200);
    expect((await purge('/admin/cache/keys/runtime-cached')).status).toBe(404);
  });

  it('refuses a wrong or missing token, and names an unknown key', async () => {
    const wrong = await purge('/admin/cache', 'not-the-token');
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_admin_token' } });
    expect((await fetch(`${gw.origin}/admin/cache`, { method: 'DELETE' })).status).toBe(401);
    const unknown = await purge('/admin/cache/keys/nobody');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'key_not_found' } });
    expect(gw.rawLogs()).not.toContain(ADMIN);
  });

  it('is not there without TOLLGATE_ADMIN_TOKEN', async () => {
    const bare = await startGateway({ upstreamUrl: upstream.url, config: { keys: KEYS } });
    try {
      const res = await fetch(`${bare.origin}/admin/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(res.status).toBe(404);
    } finally {
      await bare.close();
    }
  });
});
