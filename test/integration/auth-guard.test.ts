import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';
import { inject } from 'vitest';

// @fastify/rate-limit guards against floods of failed authentication, per client address, on
// the shared Redis; valid keys are never counted by it.

let upstream: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: inject('redisUrl'),
    config: { server: { unauthenticated_rpm: 3 }, limits: { key_prefix: uniquePrefix('guard') } },
  });
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

const post = (key: string | undefined) =>
  fetch(`${gateway.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] }),
  });

describe('unauthenticated-traffic guard', () => {
  it('refuses an address after N failed authentications with an OpenAI-shaped 429, while valid keys pass', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(i % 2 ? undefined : 'tg-wrong-key-000000000000')).status);
    expect(statuses).toEqual([401, 401, 401]);
    const refused = await post('tg-wrong-key-000000000000');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await refused.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded', param: null });
    expect(String(body.error.message)).toMatch(/missing or invalid API key/);
    // the guard never counts or blocks a valid key
    for (let i = 0; i < 5; i++) expect((await post(CLIENT_KEY)).status).toBe(200);
  });
});
