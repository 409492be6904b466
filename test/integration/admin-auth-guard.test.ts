// Admin token guessing is throttled (issue 14, item 11): missing or wrong admin tokens count per
// client address in the same counter as missing or wrong client keys (on the shared Redis, so every
// instance sees them); past `server.unauthenticated_rpm` the address gets OpenAI's 429, even with
// the right token (a throttled address must not learn which guess was right). Right tokens never count.
// Addresses are told apart by x-forwarded-for (trust_proxy), so each test has its own.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { uniquePrefix } from '../helpers/redis.js';

const ADMIN_TOKEN = 'tg-admin-guard-token-0123456789abcdef';
const WRONG = 'tg-admin-guard-token-0123456789abcdeX';
let upstream: FakeUpstream;
let first: TestGateway;
let second: TestGateway;
let memoryOnly: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  const config = { server: { unauthenticated_rpm: 3, trust_proxy: true }, limits: { key_prefix: uniquePrefix('admin-guard') } };
  // Two instances on one Redis: what one counts, the other sees.
  first = await startGateway({ upstreamUrl: upstream.url, redisUrl: inject('redisUrl'), adminToken: ADMIN_TOKEN, config });
  second = await startGateway({ upstreamUrl: upstream.url, redisUrl: inject('redisUrl'), adminToken: ADMIN_TOKEN, config });
  memoryOnly = await startGateway({ upstreamUrl: upstream.url, adminToken: ADMIN_TOKEN, config: { server: config.server } });
});
afterAll(async () => {
  await first?.close();
  await second?.close();
  await memoryOnly?.close();
  await upstream?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

async function admin(gateway: TestGateway, address: string, token: string | undefined, path = '/admin/keys', method = 'GET'): Promise<Answer> {
  const headers: Record<string, string> = { 'x-forwarded-for': address };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${gateway.origin}${path}`, { method, headers });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

function expectThrottled(answer: Answer): void {
  expect(answer.status).toBe(429);
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(expectEnvelope(answer.body)).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded', param: null });
}

describe('failed admin authentications', () => {
  it('are counted per address across instances; past the limit the address gets 429, the right token included', async () => {
    const address = '198.51.100.1';
    expect((await admin(first, address, WRONG)).status).toBe(401);
    expect((await admin(second, address, undefined)).status).toBe(401);
    expect((await admin(first, address, 'Basic abc')).status).toBe(401);
    // The fourth failure, on the other instance: the count is shared.
    expectThrottled(await admin(second, address, WRONG));
    // Throttled: the right token is refused the same way, so guessing learns nothing.
    expectThrottled(await admin(second, address, ADMIN_TOKEN));
    expectThrottled(await admin(second, address, WRONG, '/admin/cache', 'DELETE'));
    // Another address is not affected.
    expect((await admin(second, '198.51.100.2', ADMIN_TOKEN)).status).toBe(200);
  });

  it('right tokens never count; client-key and admin-token failures share one count', async () => {
    const address = '198.51.100.3';
    for (let i = 0; i < 5; i++) expect((await admin(first, address, ADMIN_TOKEN)).status).toBe(200);
    expect((await admin(first, address, WRONG)).status).toBe(401);
    const wrongKey = await fetch(`${first.url}/models`, { headers: { authorization: 'Bearer tg-wrong-client-key-0123456789', 'x-forwarded-for': address } });
    expect(wrongKey.status).toBe(401);
    expect((await admin(first, address, WRONG, '/admin/cache', 'DELETE')).status).toBe(401);
    expectThrottled(await admin(first, address, WRONG));
    // A valid client key is never counted nor blocked by the guard (as before).
    const valid = await fetch(`${first.url}/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}`, 'x-forwarded-for': address } });
    expect(valid.status).toBe(200);
  });

  it('are throttled without Redis too (process memory)', async () => {
    const address = '198.51.100.4';
    for (let i = 0; i < 3; i++) expect((await admin(memoryOnly, address, WRONG)).status).toBe(401);
    expectThrottled(await admin(memoryOnly, address, WRONG));
    expectThrottled(await admin(memoryOnly, address, ADMIN_TOKEN));
  });
});
