// Redis down (issue 14, item 12): the admin API's reads and /tollgate/me answer OpenAI's 503
// `service_unavailable` ("try again"), not a 500 `server_error`, and serve again when Redis is back.
// This file starts its own redis-server and kills it; the run's shared Redis is not touched.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const ADMIN_TOKEN = 'tg-admin-redis-outage-0123456789abcdef';
let upstream: FakeUpstream;
let redisServer: RedisServer;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  redisServer = await startRedisServer();
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: redisServer.url,
    adminToken: ADMIN_TOKEN,
    config: { limits: { key_prefix: uniquePrefix('admin-outage'), redis_timeout_ms: 1000, on_redis_error: 'fail_closed' } },
  });
});
afterAll(async () => {
  await gateway?.close();
  await redisServer?.stop();
  await upstream?.close();
});

async function get(path: string, token: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gateway.origin}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.json() };
}

const READS = ['/admin/keys', '/admin/keys/made-here', '/admin/keys/made-here/usage', '/admin/keys/test-key/usage'] as const;

describe('admin reads and /tollgate/me with Redis down', () => {
  it('answer 503 service_unavailable in OpenAI’s envelope while Redis is down, 200 again once it is back', async () => {
    const created = await fetch(`${gateway.origin}/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'made-here', tier: 'tier-1', budget_usd: { daily: 1 } }),
    });
    expect(created.status).toBe(201);
    for (const path of READS) expect((await get(path, ADMIN_TOKEN)).status).toBe(200);
    expect((await get('/tollgate/me', CLIENT_KEY)).status).toBe(200);

    const port = redisServer.port;
    await redisServer.stop();
    // The client notices the closed connection on its own; until then a call may still be on its way.
    await vi.waitFor(async () => expect((await get('/admin/keys', ADMIN_TOKEN)).status).toBe(503), { timeout: 10_000, interval: 50 });
    for (const path of READS) {
      const answer = await get(path, ADMIN_TOKEN);
      expect({ path, status: answer.status }).toEqual({ path, status: 503 });
      expect(expectEnvelope(answer.body)).toMatchObject({ type: 'server_error', code: 'service_unavailable', param: null });
    }
    const me = await get('/tollgate/me', CLIENT_KEY);
    expect(me.status).toBe(503);
    expect(expectEnvelope(me.body)).toMatchObject({ type: 'server_error', code: 'service_unavailable' });

    redisServer = await startRedisServer({ port });
    await vi.waitFor(async () => expect((await get('/admin/keys', ADMIN_TOKEN)).status).toBe(200), { timeout: 15_000, interval: 100 });
    // A fresh server: the created key is gone with the old one's memory, the rest answers again.
    expect((await get('/admin/keys/test-key/usage', ADMIN_TOKEN)).status).toBe(200);
    expect((await get('/tollgate/me', CLIENT_KEY)).status).toBe(200);
  });
});
