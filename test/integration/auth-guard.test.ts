import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';
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

// Issue 20, fault 5: only a wrong or missing key is a failed authentication. An error of the
// gateway itself while it authenticates (here a run-time key record it cannot read: `models` is
// a string, not a list) is a 500 and must not feed the guard, or a bug would lock whole addresses out.
describe('the guard and errors that are not failed authentications', () => {
  const prefix = uniquePrefix('guard-bug');
  const secret = 'tg-corrupt-record-0123456789abcdef';
  let own: TestGateway;
  let redis: Redis;
  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    const sha256 = createHash('sha256').update(secret).digest('hex');
    const record = { id: 'corrupt', sha256, key_hint: 'tg-…cdef', tier: 'tier-1', models: 'gpt-4.1-nano', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' };
    await redis.hset(`${prefix}{keys}:records`, 'corrupt', JSON.stringify(record));
    await redis.hset(`${prefix}{keys}:digests`, sha256, 'corrupt');
    own = await startGateway({ upstreamUrl: upstream.url, redisUrl: inject('redisUrl'), config: { server: { unauthenticated_rpm: 2 }, limits: { key_prefix: prefix } } });
  });
  afterAll(async () => {
    await own?.close();
    await deleteByPrefix(redis, prefix);
    redis?.disconnect();
  });
  const postTo = (key: string) =>
    fetch(`${own.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] }),
    });

  it('answers a programming error with an OpenAI-shaped 500 that the guard does not count', async () => {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await postTo(secret));
    expect(answers.map((a) => a.status)).toEqual([500, 500, 500]);
    expect(await answers[0]?.json()).toEqual({
      error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null },
    });
    // Two wrong keys are still allowed (unauthenticated_rpm 2), the third is refused.
    const wrong = [];
    for (let i = 0; i < 3; i++) wrong.push((await postTo('tg-wrong-key-000000000000')).status);
    expect(wrong).toEqual([401, 401, 429]);
  });
});
