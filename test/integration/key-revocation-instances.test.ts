// Key changes reach every instance (issue 5, acceptance): two real tollgate processes on one Redis.
// A key revoked, rotated or disabled through instance A's admin API is refused by instance B within
// one second of the admin call returning (B had the key cached: pub/sub invalidates it), and a key
// created through A authenticates on B at once.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';
import { configDir, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const UPSTREAM_KEY = 'sk-upstream-revocation-0123456789abcdef';
const ADMIN_TOKEN = 'tg-admin-revocation-0123456789abcdef';
const PREFIX = uniquePrefix('revocation');
/** The acceptance: refused everywhere within one second. */
const DEADLINE_MS = 1000;

let upstream: FakeUpstream;
let a: TollgateProcess;
let b: TollgateProcess;
let redis: Redis;
const configs = configDir();

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY, record: false });
  // A long cache TTL: only the pub/sub invalidation can make B forget a key within the second.
  const config = configs.write('revocation.yaml', `limits:\n  key_prefix: "${PREFIX}"\n  redis_timeout_ms: 5000\nkey_store:\n  cache_ttl_ms: 600000\n`);
  const env = { TOLLGATE_CONFIG: config, TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY, REDIS_URL: inject('redisUrl'), TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN, LOG_LEVEL: 'warn' };
  [a, b] = await Promise.all([startTollgate(env), startTollgate(env)]);
  redis = new Redis(inject('redisUrl'));
}, 60_000);
afterAll(async () => {
  await Promise.all([a?.kill(), b?.kill()]);
  await upstream?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
  configs.cleanup();
});

async function admin(proc: TollgateProcess, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${proc.origin}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status).toBeLessThan(300);
  return (await res.json()) as Record<string, unknown>;
}

/** A model call (limited, budget-checked) with `secret` on `proc`: the status. */
async function status(proc: TollgateProcess, secret: string): Promise<number> {
  const res = await fetch(`${proc.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Poll until `secret` is refused on `proc`; returns how long after `since` the first refusal came. */
async function refusedAfter(proc: TollgateProcess, secret: string, since: number): Promise<number> {
  for (;;) {
    const answered = await status(proc, secret);
    const elapsed = performance.now() - since;
    if (answered === 401) return elapsed;
    expect(answered).toBe(200);
    // Past the deadline with the key still accepted: the acceptance failed (stop polling).
    if (elapsed > DEADLINE_MS) return elapsed;
    await new Promise((r) => setTimeout(r, 20));
  }
}

let n = 0;
async function createdThroughA(): Promise<{ id: string; secret: string }> {
  const id = `shared-${++n}`;
  const body = await admin(a, 'POST', '/keys', { id, tier: 'tier-1', budget_usd: { daily: 10 } });
  return { id, secret: body.key as string };
}

describe('a key changed through instance A, on instance B', () => {
  it('a key created through A works on B at once', async () => {
    const { secret } = await createdThroughA();
    expect(await status(b, secret)).toBe(200);
  });

  it('revoked through A: refused by B within one second', async () => {
    const { id, secret } = await createdThroughA();
    // B has the key cached (and A too).
    expect(await status(b, secret)).toBe(200);
    expect(await status(a, secret)).toBe(200);
    await admin(a, 'DELETE', `/keys/${id}`);
    const since = performance.now();
    const elapsed = await refusedAfter(b, secret, since);
    expect(elapsed).toBeLessThanOrEqual(DEADLINE_MS);
    expect(await status(a, secret)).toBe(401);
    // Stays refused.
    for (let i = 0; i < 3; i++) expect(await status(b, secret)).toBe(401);
  });

  it('rotated through A: the old secret refused by B within one second, the new one accepted by B', async () => {
    const { id, secret } = await createdThroughA();
    expect(await status(b, secret)).toBe(200);
    const rotated = (await admin(a, 'POST', `/keys/${id}/rotate`)).key as string;
    const since = performance.now();
    expect(await refusedAfter(b, secret, since)).toBeLessThanOrEqual(DEADLINE_MS);
    expect(await status(b, rotated)).toBe(200);
  });

  it('disabled through A: refused by B within one second; enabled again: accepted by B', async () => {
    const { id, secret } = await createdThroughA();
    expect(await status(b, secret)).toBe(200);
    await admin(a, 'PATCH', `/keys/${id}`, { disabled: true });
    const since = performance.now();
    expect(await refusedAfter(b, secret, since)).toBeLessThanOrEqual(DEADLINE_MS);
    await admin(a, 'PATCH', `/keys/${id}`, { disabled: false });
    await expect.poll(() => status(b, secret), { timeout: DEADLINE_MS, interval: 20 }).toBe(200);
  });
});
