// When Redis fails (issue 3, point 8): a fail-closed gateway answers OpenAI-shaped 503s, a
// fail-open one keeps serving with its limits divided by the instance count; no request hangs,
// whether Redis is frozen (SIGSTOP: only the command timeout ends a call) or killed under load
// (SIGKILL); both go back to Redis on their own when it returns. The tests run in order.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bucketKey } from '../helpers/buckets.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const MODEL = 'gpt-4.1-nano';
const secret = (id: string) => `tg-redis-failure-${id}-0123456789`;
const KEYS = [
  { id: 'load', key: secret('load'), tier: 'tier-1' as const, limits: { rpm: 5000, rpd: null } },
  { id: 'day', key: secret('day'), tier: 'tier-1' as const, limits: { rpm: null, rpd: 10, tpm: null } },
  { id: 'probe', key: secret('probe'), tier: 'tier-1' as const, limits: { rpm: 5000, rpd: null } },
];
const CLOSED_PREFIX = uniquePrefix('fail-closed');
const OPEN_PREFIX = uniquePrefix('fail-open');

let upstream: FakeUpstream;
let redisServer: RedisServer;
/** Redis was killed and not restarted. */
let down = false;

/**
 * Redis gone: the precondition of the tests after the SIGKILL one, made here whatever ran before
 * them (alone, in another order, or after a failed test).
 */
async function redisDown(): Promise<void> {
  if (down) return;
  redisServer.kill('SIGKILL');
  await redisServer.exited;
  down = true;
}
let closed: TestGateway;
let open: TestGateway;
let port: number;

beforeAll(async () => {
  // Not the run's shared Redis: this file owns (and kills) its own.
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  redisServer = await startRedisServer();
  port = redisServer.port;
  const limits = { redis_timeout_ms: 200 };
  closed = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: redisServer.url,
    config: { keys: KEYS, limits: { ...limits, key_prefix: CLOSED_PREFIX, on_redis_error: 'fail_closed' } },
  });
  open = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: redisServer.url,
    config: { keys: KEYS, limits: { ...limits, key_prefix: OPEN_PREFIX, on_redis_error: 'fail_open', instances: 2 } },
  });
});
afterAll(async () => {
  await closed?.close();
  await open?.close();
  redisServer?.kill('SIGCONT');
  await redisServer?.stop();
  await upstream?.close();
});

type Outcome = { status: number; body: unknown } | { status: 'hung' | 'error'; body: unknown };

/** One chat call; a client timeout far above any Redis timeout turns a hang into an outcome. */
async function ask(gw: TestGateway, id: string): Promise<Outcome> {
  try {
    const res = await fetch(`${gw.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret(id)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'still limited?' }], max_tokens: 5 }),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: await res.json() };
  } catch (err) {
    return { status: (err as Error).name === 'TimeoutError' ? 'hung' : 'error', body: String(err) };
  }
}

async function healthy(gw: TestGateway): Promise<number> {
  return (await fetch(`${gw.origin}/healthz`, { signal: AbortSignal.timeout(10_000) })).status;
}

function expect503(outcome: Outcome): void {
  expect(outcome.status).toBe(503);
  expect(expectEnvelope(outcome.body)).toMatchObject({ type: 'server_error', param: null, code: 'service_unavailable' });
}

/** Until a call through `gw` has been served from Redis again (its bucket appears there). */
async function untilServedFromRedis(gw: TestGateway, prefix: string): Promise<void> {
  const probe = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  try {
    await vi.waitFor(
      async () => {
        await probe.del(bucketKey(prefix, 'probe', 'rpm'));
        expect((await ask(gw, 'probe')).status).toBe(200);
        expect(await probe.exists(bucketKey(prefix, 'probe', 'rpm'))).toBe(1);
      },
      { timeout: 15_000, interval: 200 },
    );
  } finally {
    probe.disconnect();
  }
}

describe('Redis fails and comes back', () => {
  it('with Redis up, both gateways admit from Redis', async () => {
    await untilServedFromRedis(closed, CLOSED_PREFIX);
    await untilServedFromRedis(open, OPEN_PREFIX);
  });

  it('Redis frozen (SIGSTOP): fail-closed answers 503 after the command timeout, fail-open serves, nothing hangs', async () => {
    redisServer.kill('SIGSTOP');
    try {
      const [a, b, c, d] = await Promise.all([ask(closed, 'load'), ask(closed, 'load'), ask(open, 'load'), ask(open, 'load')]);
      expect503(a);
      expect503(b);
      expect(c.status).toBe(200);
      expect(d.status).toBe(200);
      expect(await healthy(closed)).toBe(200);
      // Calls without a model are limited too: refused by fail_closed, served by fail_open.
      for (const [gateway, status] of [[closed, 503], [open, 200]] as const) {
        const models = await fetch(`${gateway.url}/models`, { headers: { authorization: `Bearer ${secret('load')}` }, signal: AbortSignal.timeout(10_000) });
        expect(models.status).toBe(status);
        await models.text();
      }
    } finally {
      redisServer.kill('SIGCONT');
    }
    await untilServedFromRedis(closed, CLOSED_PREFIX);
    await untilServedFromRedis(open, OPEN_PREFIX);
  });

  // Waits for progress, not for speed: generous bounds, so a busy machine is slow, not failing.
  it('Redis SIGKILLed under load: every request resolves; fail-closed 503s, fail-open keeps serving', { timeout: 120_000 }, async () => {
    const outcomes = { closed: [] as Outcome[], open: [] as Outcome[] };
    let stop = false;
    let killed = false;
    const afterKill = { closed: 0, open: 0 };
    const worker = async (name: 'closed' | 'open'): Promise<void> => {
      const gw = name === 'closed' ? closed : open;
      while (!stop) {
        const outcome = await ask(gw, 'load');
        outcomes[name].push(outcome);
        if (killed) afterKill[name]++;
      }
    };
    const workers = [...Array.from({ length: 8 }, () => worker('closed')), ...Array.from({ length: 8 }, () => worker('open'))];
    try {
      await vi.waitFor(() => expect(outcomes.closed.length + outcomes.open.length).toBeGreaterThanOrEqual(40), { timeout: 50_000 });
      redisServer.kill('SIGKILL');
      killed = true;
      await redisServer.exited;
      down = true;
      await vi.waitFor(() => expect(Math.min(afterKill.closed, afterKill.open)).toBeGreaterThanOrEqual(40), { timeout: 50_000 });
    } finally {
      // Whatever failed, the workers stop: the tests after this one must not share the machine with them.
      stop = true;
      await Promise.all(workers);
    }

    const statuses = (list: Outcome[]) => [...new Set(list.map((o) => o.status))].sort();
    expect(statuses(outcomes.open)).toEqual([200]);
    expect(outcomes.closed.filter((o) => o.status !== 200 && o.status !== 503)).toEqual([]);
    const refused = outcomes.closed.filter((o) => o.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    for (const o of refused) expect503(o);
    expect(await healthy(closed)).toBe(200);
    expect(await healthy(open)).toBe(200);
    expect503(await ask(closed, 'load'));
  });

  it('fail-open limits locally with the limits divided by `instances` (RPD 10 over 2: 5 here)', async () => {
    await redisDown();
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 8; i++) outcomes.push(await ask(open, 'day'));
    expect(outcomes.map((o) => o.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(expectEnvelope(outcomes[5]?.body)).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
  });

  it('both go back to Redis by themselves when it restarts on the same port', async () => {
    await redisDown();
    redisServer = await startRedisServer({ port });
    down = false;
    await untilServedFromRedis(closed, CLOSED_PREFIX);
    await untilServedFromRedis(open, OPEN_PREFIX);
    // Back on the shared buckets: the day key's Redis bucket (empty, new server) admits again.
    expect((await ask(open, 'day')).status).toBe(200);
  });

  it('tollgate_redis_errors_total counted the failures on both gateways', async () => {
    // A failure of its own on each gateway, whatever the tests before did.
    await redisDown();
    expect503(await ask(closed, 'load'));
    expect((await ask(open, 'load')).status).toBe(200);
    for (const gw of [closed, open]) {
      const text = await (await fetch(`${gw.origin}/metrics`)).text();
      const match = /^tollgate_redis_errors_total (\d+)/m.exec(text);
      expect(match).not.toBeNull();
      expect(Number(match?.[1])).toBeGreaterThan(0);
    }
  });
});
