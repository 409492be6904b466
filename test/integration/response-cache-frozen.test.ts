// Issue 14 item 13: with Redis frozen (the process stopped, its connection open: commands are
// neither answered nor refused), every request of a key with a response cache waited on the
// cache store as long as the Redis client let it. Each lookup and store is now bounded by
// caching.response_cache.store_timeout_ms (default limits.redis_timeout_ms) and is a miss beyond.
// Here the Redis client's own timeout is 60 s and the cache's 200 ms: a request that waited on the
// client would outlast the test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { callsTo, metricValue, post } from '../helpers/cache.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const CHAT = '/v1/chat/completions';
const SECRET = 'tg-cache-frozen-0123456789abcdef';

let upstream: FakeUpstream;
let redis: RedisServer;
let gw: TestGateway;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  redis = await startRedisServer();
  gw = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: redis.url,
    config: {
      // No limits, budgets or quotas: the limiter has nothing to ask Redis, only the cache does.
      keys: [{ id: 'frozen', key: SECRET, tier: 'tier-1', limits: { rpm: null, rpd: null, tpm: null }, cache: { ttl_s: 60 } }],
      limits: { key_prefix: uniquePrefix('cache-frozen'), redis_timeout_ms: 60_000 },
      caching: { response_cache: { store_timeout_ms: 200 } },
    },
  });
});
afterAll(async () => {
  redis?.kill('SIGCONT');
  await gw?.close();
  await redis?.stop();
  await upstream?.close();
});

describe('with Redis frozen (SIGSTOP)', () => {
  it('requests of a cached key are served as misses, each store call given up after store_timeout_ms', { timeout: 15_000 }, async () => {
    const body = { model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'served while redis is frozen' }] };
    expect((await post(gw, CHAT, SECRET, body)).headers.get('x-tollgate-cache')).toBe('miss');
    expect((await post(gw, CHAT, SECRET, body)).headers.get('x-tollgate-cache')).toBe('hit');
    upstream.reset();
    redis.kill('SIGSTOP');
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await post(gw, CHAT, SECRET, body));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.map((a) => a.headers.get('x-tollgate-cache'))).toEqual(['miss', 'miss', 'miss']);
    expect(callsTo(upstream, CHAT)).toBe(3);
    const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
    expect(metricValue(metrics, 'tollgate_response_cache_errors_total', { during: 'get' })).toBe(3);
  });
});
