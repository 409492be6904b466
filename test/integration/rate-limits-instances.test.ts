// Exactness across instances (issue 3, acceptance): three real tollgate processes share one Redis
// (then, the same suite, one real 3-master Redis Cluster) and one fake upstream; 40 concurrent clients offer five times a key's limit, spread over the
// three. The atomic admission script hands out each slot once: the admitted count equals the
// limit, never more, and after settlement the tokens really used never exceed the bucket.
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';
import { bucketKey, consumptions, readBucket, redisNowMs, WINDOW_MS } from '../helpers/buckets.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { configDir, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const UPSTREAM_KEY = 'sk-upstream-instances-0123456789abcdef';
let PREFIX = uniquePrefix('instances');
const MODEL = 'gpt-4.1-nano';
const INSTANCES = 3;
const CLIENTS = 40;
const secret = (id: string) => `tg-instances-${id}-0123456789`;

const TPM = 3000;
const CONFIG = (clusterNodes: readonly string[]) => `
redis:
  cluster_nodes: [${clusterNodes.map((n) => `"${n}"`).join(', ')}]
limits:
  key_prefix: "${PREFIX}"
  # Generous: a loaded test machine must not turn slow Redis replies into fail-closed 503s.
  redis_timeout_ms: 5000
keys:
  - { id: day, key: "${secret('day')}", tier: tier-1, limits: { rpm: null, rpd: 30, tpm: null } }
  - { id: minute, key: "${secret('minute')}", tier: tier-1, limits: { rpm: 30, rpd: null, tpm: null } }
  - { id: tokens, key: "${secret('tokens')}", tier: tier-1, limits: { rpm: null, rpd: null, tpm: ${TPM} } }
`;

let upstream: FakeUpstream;
let redis: Redis;
let stopRedis: () => Promise<void>;
const configs = configDir();
const procs: TollgateProcess[] = [];

/** One backend's setup: a fresh Redis (or Cluster), three tollgate processes, one fake upstream. */
async function setUp(backend: 'redis' | 'cluster'): Promise<void> {
  PREFIX = uniquePrefix(`instances-${backend}`);
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY, record: true });
  const env: Record<string, string> = { TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY, LOG_LEVEL: 'warn' };
  if (backend === 'cluster') {
    const cluster = await startRedisCluster(3);
    stopRedis = cluster.stop;
    // The bucket helpers speak single-node commands (HGET, TIME): a Cluster client routes them.
    redis = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) }))) as unknown as Redis;
    env.TOLLGATE_CONFIG = configs.write(`instances-${backend}.yaml`, CONFIG(cluster.nodes));
  } else {
    const server = await startRedisServer();
    stopRedis = server.stop;
    redis = new Redis(server.url);
    env.TOLLGATE_CONFIG = configs.write(`instances-${backend}.yaml`, CONFIG([]));
    env.REDIS_URL = server.url;
  }
  procs.push(...(await Promise.all(Array.from({ length: INSTANCES }, () => startTollgate(env)))));
}

async function tearDown(): Promise<void> {
  await Promise.all(procs.splice(0).map((p) => p.kill()));
  await redis?.quit();
  await stopRedis?.();
  await upstream?.close();
}
afterAll(() => configs.cleanup());

interface Answer {
  readonly instance: number;
  readonly status: number;
  readonly headers: Headers;
  readonly body: { usage?: { total_tokens: number }; error?: { type: string; code: string } };
}

/** `total` chat requests from `CLIENTS` concurrent workers, request i to instance i mod 3. */
async function burst(id: string, total: number, request: (i: number) => { body: Record<string, unknown>; headers?: Record<string, string> }): Promise<Answer[]> {
  const answers: Answer[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < total; i = next++) {
      const { body, headers } = request(i);
      const instance = i % INSTANCES;
      const res = await fetch(`${procs[instance]?.origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret(id)}`, 'content-type': 'application/json', 'x-test-case': id, ...headers },
        body: JSON.stringify(body),
      });
      answers.push({ instance, status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] });
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  return answers;
}

function statusCounts(answers: readonly Answer[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
  return counts;
}

const chat = { model: MODEL, messages: [{ role: 'user', content: 'count me' }] };
const forwarded = (id: string) => upstream.requests.filter((r) => r.headers['x-test-case'] === id).length;

describe.each(['redis', 'cluster'] as const)('three instances, one %s', (backend) => {
  beforeAll(() => setUp(backend), 90_000);
  afterAll(tearDown);

  it('RPD 30, 150 offered: exactly 30 admitted, each remaining value 29…0 handed out once', async () => {
    const answers = await burst('day', 150, () => ({ body: chat }));
    expect(statusCounts(answers)).toEqual({ 200: 30, 429: 120 });
    const admitted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    for (const r of refused) expect(r.body.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    // Shared, not per instance: three instances with their own 30 each would have admitted 90.
    const remaining = admitted.map((a) => Number(a.headers.get('x-ratelimit-remaining-requests'))).sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(admitted.map((a) => a.headers.get('x-ratelimit-limit-requests'))).toEqual(Array(30).fill('30'));
    expect(forwarded('day')).toBe(30);
  });

  it('RPM 30 in a burst: 30 admitted plus at most what refilled meanwhile (by Redis time)', async () => {
    const since = await redisNowMs(redis);
    const answers = await burst('minute', 150, () => ({ body: chat }));
    const until = await redisNowMs(redis);
    const admitted = answers.filter((a) => a.status === 200).length;
    expect(statusCounts(answers)).toEqual({ 200: admitted, 429: 150 - admitted });
    const refilled = Math.floor(((until - since) * 30) / WINDOW_MS.rpm);
    expect(admitted).toBeGreaterThanOrEqual(30);
    expect(admitted).toBeLessThanOrEqual(30 + refilled);
    expect(forwarded('minute')).toBe(admitted);
  });

  it('TPM with mixed sizes: after settlement the real tokens admitted never exceed the bucket', async () => {
    const since = await redisNowMs(redis);
    const answers = await burst('tokens', 150, (i) => {
      const maxTokens = 20 + ((i * 37) % 181);
      const body = { ...chat, messages: [{ role: 'user', content: `count me ${'x'.repeat(i % 17)}` }], max_tokens: maxTokens };
      // Real usage within the reservation: prompt = the gateway's own estimate, output ≤ the cap.
      const prompt = estimateTokens(promptChars(body), 4);
      const output = 1 + ((i * 13) % maxTokens);
      return { body, headers: { 'x-fake-prompt-tokens': String(prompt), 'x-fake-chunks': String(output) } };
    });
    const admitted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    expect(admitted.length + refused.length).toBe(150);
    expect(admitted.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.body.error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' });
    const used = admitted.reduce((sum, a) => sum + (a.body.usage?.total_tokens ?? Number.NaN), 0);

    // Settlement is asynchronous: wait until the bucket's state fits the real usage.
    const key = bucketKey(PREFIX, 'tokens', 'tpm');
    let fits: number[] = [];
    let until = since;
    for (let attempt = 0; attempt < 100 && !fits.includes(used); attempt++) {
      await new Promise((r) => setTimeout(r, 20));
      const state = await readBucket(redis, key, TPM, WINDOW_MS.tpm);
      until = state.at;
      fits = consumptions(state, TPM, WINDOW_MS.tpm, since, 2 * TPM);
    }
    expect(fits).toContain(used);
    // Never over: the bucket plus what refilled during the burst (Redis time), not a token more.
    const refilled = Math.floor(((until - since) * TPM) / WINDOW_MS.tpm);
    expect(used).toBeLessThanOrEqual(TPM + refilled);
    expect(forwarded('tokens')).toBe(admitted.length);
  });
});
