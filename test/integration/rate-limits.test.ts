// Rate limits on the wire (issue 3, point 5), through the official openai SDK against the Redis
// limiter: the key's x-ratelimit-* headers, OpenAI's 429 body field by field, the SDK's own retry
// honouring retry-after-ms, aliases sharing a bucket, and calls without a model left alone.
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { goDuration } from '../../src/limits/duration.js';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';
import { bucketKey, readBucket, redisNowMs, WINDOW_MS } from '../helpers/buckets.js';

import { UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';
import { expectEnvelope, postJson } from '../helpers/openai-errors.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';
import { configDir, freshGet, startTollgate } from '../helpers/tollgate-process.js';

const MODEL = 'gpt-4.1-nano';
const PREFIX = uniquePrefix('rate-limits');
const secret = (id: string) => `tg-${id}-secret-0123456789`;
const KEYS = [
  { id: 'tier1', key: secret('tier1'), tier: 'tier-1' as const },
  { id: 'free', key: secret('free'), tier: 'free' as const },
  { id: 'retry', key: secret('retry'), tier: 'tier-1' as const, limits: { rpm: null, rpd: null, tpm: 6000 } },
  { id: 'models', key: secret('models'), tier: 'tier-1' as const, limits: { rpm: 1 } },
  { id: 'alias', key: secret('alias'), tier: 'tier-1' as const, limits: { rpm: 2 } },
  { id: 'tokens-only', key: secret('tokens-only'), tier: 'tier-1' as const, limits: { rpm: null, rpd: null, tpm: 5000 } },
  { id: 'patient', key: secret('patient'), tier: 'tier-1' as const, limits: { rpm: null, rpd: null, tpm: 6000 }, max_wait_ms: 5000 },
];
const RATE_LIMIT_MESSAGE =
  /^Rate limit reached for gpt-4\.1-nano in organization free on requests per min \(RPM\): Limit 3, Used 3, Requested 1\. Please try again in (\d+(?:\.\d+)?m?s|\d+m\d+(?:\.\d+)?s)\. Visit https:\/\/platform\.openai\.com\/account\/rate-limits to learn more\.$/;

const fx = useGateway(() => ({ redisUrl: inject('redisUrl'), config: { keys: KEYS, limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 } } }));
let redis: Redis;
const configs = configDir();

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
  configs.cleanup();
});

const client = (id: string, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) => fx.gateway.client({ apiKey: secret(id), ...options });
const auth = (id: string) => ({ authorization: `Bearer ${secret(id)}` });
const chat = (extra: Record<string, unknown> = {}) => ({ model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }], ...extra });
const recordedWith = (name: string, value: string) => fx.upstream.requests.filter((r) => r.headers[name] === value);

describe('x-ratelimit-* headers', () => {
  it("a successful answer carries the key's figures, replacing the upstream's own", async () => {
    const body = chat({ max_tokens: 1000 });
    const reserved = estimateTokens(promptChars(body), 4) + 1000;
    const { data, response } = await client('tier1').chat.completions.create(body).withResponse();
    expect(data.object).toBe('chat.completion');
    expect({
      limitRequests: response.headers.get('x-ratelimit-limit-requests'),
      remainingRequests: response.headers.get('x-ratelimit-remaining-requests'),
      resetRequests: response.headers.get('x-ratelimit-reset-requests'),
      limitTokens: response.headers.get('x-ratelimit-limit-tokens'),
      remainingTokens: response.headers.get('x-ratelimit-remaining-tokens'),
      resetTokens: response.headers.get('x-ratelimit-reset-tokens'),
    }).toEqual({
      limitRequests: '500',
      remainingRequests: '499',
      resetRequests: '120ms',
      limitTokens: '200000',
      remainingTokens: String(200_000 - reserved),
      resetTokens: goDuration(Math.ceil((reserved * WINDOW_MS.tpm) / 200_000)),
    });
  });

  it('a stream carries them too', async () => {
    const res = await fetch(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: { ...auth('tier1'), 'content-type': 'application/json' },
      body: JSON.stringify(chat({ stream: true })),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('500');
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('200000');
    expect(Number(res.headers.get('x-ratelimit-remaining-requests'))).toBeLessThan(500);
    await res.text();
  });

  it("the upstream's own x-ratelimit-* (the gateway organisation's) never reach a client", async () => {
    // A key with a token limit only: the request headers must not be the upstream's 30000.
    const res = await postJson(`${fx.gateway.url}/chat/completions`, chat(), auth('tokens-only'));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('5000');
    expect.soft(res.headers.get('x-ratelimit-limit-requests')).toBeNull();
    expect.soft(res.headers.get('x-ratelimit-remaining-requests')).toBeNull();
    // A call without a model: the key's own figures (its requests bucket), never the upstream's.
    const models = await fetch(`${fx.gateway.url}/models`, { headers: auth('tokens-only') });
    expect(models.status).toBe(200);
    await models.text();
    expect(models.headers.get('x-ratelimit-limit-tokens')).toBe('5000');
    expect(models.headers.get('x-ratelimit-limit-requests')).toBeNull();
  });
});

describe('429 from the limiter', () => {
  it('free tier: the 4th call is a 429 whose body matches OpenAI field by field, never forwarded', async () => {
    const sdk = client('free');
    for (let i = 0; i < 3; i++) await sdk.chat.completions.create(chat(), { headers: { 'x-test-case': 'free' } });
    const res = await postJson(`${fx.gateway.url}/chat/completions`, chat(), { ...auth('free'), 'x-test-case': 'free' });
    expect(res.status).toBe(429);
    const error = expectEnvelope(res.body);
    expect(error.message).toMatch(RATE_LIMIT_MESSAGE);
    expect(error).toEqual({ message: error.message, type: 'requests', param: null, code: 'rate_limit_exceeded' });
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const waitMs = Number(res.headers.get('retry-after-ms'));
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(20_000);
    expect(error.message).toContain(`Please try again in ${goDuration(waitMs)}.`);
    expect(res.headers.get('retry-after')).toBe(String(Math.ceil(waitMs / 1000)));
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(recordedWith('x-test-case', 'free')).toHaveLength(3);

    // The SDK raises its RateLimitError with the same fields.
    const thrown = await sdk.chat.completions.create(chat()).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(OpenAI.RateLimitError);
    const sdkError = thrown as InstanceType<typeof OpenAI.RateLimitError>;
    expect(sdkError.status).toBe(429);
    expect(sdkError.type).toBe('requests');
    expect(sdkError.code).toBe('rate_limit_exceeded');
    expect(sdkError.param).toBeNull();
    expect(sdkError.message).toMatch(/^429 Rate limit reached for gpt-4\.1-nano in organization free/);
  });

  it('the SDK with its default retries waits the advertised time and then succeeds', async () => {
    // Tokens only, 6000 per minute (100 per second). A first call really uses 6045 tokens: the
    // bucket ends ~45 tokens in debt, so the next call (~55 tokens) must wait about a second.
    await indebt(client('retry'), PREFIX, 'retry', 45);

    const sdk = client('retry', { maxRetries: 2 });
    const { data, response } = await sdk.chat.completions.create(chat({ max_tokens: 50 }), { headers: { 'x-test-case': 'retry' } }).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(response.status).toBe(200);
    const seen = recordedWith('x-test-case', 'retry');
    // Refusals never reach the upstream: it saw only the attempt that was admitted, a retry.
    expect(seen).toHaveLength(1);
    expect(['1', '2']).toContain(seen[0]?.headers['x-stainless-retry-count']);
  });

  it('aliases share one bucket, and a refusal takes nothing from it', async () => {
    const sdk = client('alias');
    await sdk.chat.completions.create(chat());
    await sdk.chat.completions.create({ ...chat(), model: 'gpt-4.1-nano-2025-04-14' });
    // Both names share one bucket: the third call, under either name, is refused.
    const res = await postJson(`${fx.gateway.url}/chat/completions`, { ...chat(), model: 'gpt-4.1-nano-2025-04-14' }, auth('alias'));
    expect(res.status).toBe(429);
    expect(expectEnvelope(res.body).message).toContain('Limit 2, Used 2, Requested 1');
    const state = await readBucket(redis, bucketKey(PREFIX, 'alias', 'rpm'), 2, WINDOW_MS.rpm);
    expect(state.exists).toBe(true);
    expect(Math.floor(state.level / WINDOW_MS.rpm)).toBe(0);
    expect(await redis.exists(bucketKey(PREFIX, 'alias', 'rpm', 'gpt-4.1-nano-2025-04-14'))).toBe(0);
  });
});

/** Leave a key's 6000-TPM bucket `debt` tokens in debt (a call that used more than it reserved). */
async function indebt(sdk: OpenAI, prefix: string, id: string, debt: number): Promise<void> {
  await sdk.chat.completions.create(chat({ max_tokens: 10 }), { headers: { 'x-fake-prompt-tokens': String(6000 + debt - 5), 'x-fake-chunks': '5' } });
  const key = bucketKey(prefix, id, 'tpm');
  await vi.waitFor(async () => expect((await readBucket(redis, key, 6000, WINDOW_MS.tpm)).level).toBeLessThan(0), { timeout: 3000 });
}

describe('max_wait_ms', () => {
  it('a key with max_wait_ms waits for the refill and is admitted instead of refused', async () => {
    await indebt(client('patient'), PREFIX, 'patient', 45);
    const { response } = await client('patient', { maxRetries: 0 }).chat.completions.create(chat({ max_tokens: 50 }), { headers: { 'x-test-case': 'patient' } }).withResponse();
    expect(response.status).toBe(200);
    const seen = recordedWith('x-test-case', 'patient');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers['x-stainless-retry-count']).toBe('0');
  });

  it('a client that leaves while waiting is never forwarded upstream, and the process keeps running', async () => {
    // The real process: a client gone before the answer must not take it down.
    const prefix = uniquePrefix('rate-limits-leaver');
    const keyYaml = `keys:\n  - { id: leaver, key: "${secret('leaver')}", tier: tier-1, max_wait_ms: 5000, limits: { rpm: null, rpd: null, tpm: 6000 } }\n`;
    const path = configs.write('leaver.yaml', `limits:\n  key_prefix: "${prefix}"\n  redis_timeout_ms: 5000\n${keyYaml}`);
    const proc = await startTollgate({ TOLLGATE_CONFIG: path, TOLLGATE_UPSTREAM_URL: fx.upstream.url, OPENAI_API_KEY: UPSTREAM_KEY, REDIS_URL: inject('redisUrl') });
    try {
      await indebt(new OpenAI({ baseURL: `${proc.origin}/v1`, apiKey: secret('leaver'), maxRetries: 0 }), prefix, 'leaver', 100);
      const body = chat({ max_tokens: 50 });
      const need = estimateTokens(promptChars(body), 4) + 50;
      const controller = new AbortController();
      const pending = fetch(`${proc.origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...auth('leaver'), 'content-type': 'application/json', 'x-test-case': 'leaver' },
        body: JSON.stringify(body),
        signal: controller.signal,
      }).catch((e: unknown) => e);
      setTimeout(() => controller.abort(), 200);
      expect(await pending).toBeInstanceOf(Error);
      // Until the bucket (Redis time) has refilled past what the request needed, and a while more:
      // a waiting request whose client left would have been admitted and forwarded by then.
      const key = bucketKey(prefix, 'leaver', 'tpm');
      await vi.waitFor(
        async () => {
          const state = await readBucket(redis, key, 6000, WINDOW_MS.tpm);
          const now = await redisNowMs(redis);
          expect(state.level + (now - state.at) * 6000).toBeGreaterThanOrEqual(need * WINDOW_MS.tpm);
        },
        { timeout: 5000, interval: 50 },
      );
      await new Promise((r) => setTimeout(r, 300));
      expect.soft(recordedWith('x-test-case', 'leaver')).toEqual([]);
      const exited = await Promise.race([proc.exited.then((code) => `exited (${code}): ${proc.stderr().slice(0, 300)}`), new Promise((r) => setTimeout(() => r('running'), 100))]);
      expect(exited).toBe('running');
      expect((await freshGet(`${proc.origin}/healthz`)).status).toBe(200);
    } finally {
      await proc.kill();
      await deleteByPrefix(redis, prefix);
    }
  });
});

describe('calls without a model', () => {
  it("GET /v1/models counts against the key's RPM in a bucket of its own, leaving the models' buckets alone", async () => {
    const sdk = client('models', { maxRetries: 0 });
    const page = await sdk.models.list();
    expect(page.data.length).toBeGreaterThan(0);
    const refused = await fetch(`${fx.gateway.url}/models`, { headers: auth('models') });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('Rate limit reached for requests without a model in organization models on requests per min (RPM)');
    // The one request per minute of the model is still there for a model call.
    const { response } = await sdk.chat.completions.create(chat()).withResponse();
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    const refusedChat = await postJson(`${fx.gateway.url}/chat/completions`, chat(), auth('models'));
    expect(refusedChat.status).toBe(429);
  });
});
