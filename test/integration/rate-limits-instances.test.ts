// Exactness across instances (issue 3, acceptance): three real tollgate processes share one Redis
// and one fake upstream; 40 concurrent clients offer five times a key's limit, spread over the
// three. The atomic admission script hands out each slot once: the admitted count equals the
// limit, never more, and after settlement the tokens really used never exceed the bucket.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';
import { bucketKey, consumptions, readBucket, redisNowMs, WINDOW_MS } from '../helpers/buckets.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { configDir, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const UPSTREAM_KEY = 'sk-upstream-instances-0123456789abcdef';
const PREFIX = uniquePrefix('instances');
const MODEL = 'gpt-4.1-nano';
const INSTANCES = 3;
const CLIENTS = 40;
const secret = (id: string) => `tg-instances-${id}-0123456789`;

const TPM = 3000;
const CONFIG = `
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
let redisServer: RedisServer;
let redis: Redis;
const configs = configDir();
const procs: TollgateProcess[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY, record: true });
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  const path = configs.write('instances.yaml', CONFIG);
  const env = { TOLLGATE_CONFIG: path, TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY, REDIS_URL: redisServer.url, LOG_LEVEL: 'warn' };
  procs.push(...(await Promise.all(Array.from({ length: INSTANCES }, () => startTollgate(env)))));
}, 60_000);
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await redis?.quit();
  await redisServer?.stop();
  await upstream?.close();
  configs.cleanup();
});

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

describe('three instances, one Redis', () => {
  it('RPD 30, 150 offered: exactly 30 admitted, each remaining value 29…0 handed out once', async () => {
    const answers = await burst('day', 150, () => ({ body: chat }));
    expect(statusCounts(answers)).toEqual({ 200: 30, 429: 120 });
    const admitted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    for (const r of refused) expect(r.body.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    // Every instance both admitted and refused: the limit really was shared.
    for (let i = 0; i < INSTANCES; i++) expect(answers.filter((a) => a.instance === i)).toHaveLength(50);
    const remaining = admitted.map((a) => Number(a.headers.get('x-ratelimit-remaining-requests'))).sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(admitted.every((a) => a.headers.get('x-ratelimit-limit-requests') === '30')).toBe(true);
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
