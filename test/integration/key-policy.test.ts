// Per-key policy on the wire (issue 5, points 2, 3 and 5), through the official openai SDK against
// Redis: allowed models (403), expiry and the disabled flag (401), token quotas and budgets (OpenAI's
// insufficient_quota 429 with x-should-retry: false, counted as rate_limited_total{limit}), per-model
// limit overrides, and GET /tollgate/me.
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import { useGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const MODEL = 'gpt-4.1-nano';
const PREFIX = uniquePrefix('key-policy');
const secret = (id: string) => `tg-policy-${id}-0123456789`;
const KEYS = [
  { id: 'nano-only', key: secret('nano-only'), tier: 'tier-1' as const, models: ['gpt-4.1-nano-2025-04-14'] },
  { id: 'expired', key: secret('expired'), tier: 'tier-1' as const, expires_at: '2020-01-01T00:00:00Z' },
  { id: 'later', key: secret('later'), tier: 'tier-1' as const, expires_at: '2099-01-01T00:00:00+02:00' },
  { id: 'off', key: secret('off'), tier: 'tier-1' as const, disabled: true },
  { id: 'tokens', key: secret('tokens'), tier: 'tier-1' as const, token_quota: { daily: 2500 } },
  { id: 'budget', key: secret('budget'), tier: 'tier-1' as const, budget_usd: { monthly: 0.0005 } },
  { id: 'per-model', key: secret('per-model'), tier: 'tier-1' as const, limits: { rpm: 100, models: { 'gpt-4.1-nano-2025-04-14': { rpm: 2 } } } },
  {
    id: 'me',
    key: secret('me'),
    tier: 'tier-2' as const,
    budget_usd: { daily: 2, total: 10 },
    token_quota: { monthly: 1_000_000 },
    models: ['gpt-4.1-nano', 'text-embedding-3-small'],
    metadata: { team: 'search' },
  },
];

const fx = useGateway(() => ({ redisUrl: inject('redisUrl'), config: { keys: KEYS, limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 } }, resetEachTest: false }));
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

const client = (id: string) => fx.gateway.client({ apiKey: secret(id) });
const ask = (id: string, model = MODEL, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  client(id).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 100, ...extra }, { headers });

async function failure(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OpenAI.APIError);
  return error as InstanceType<typeof OpenAI.APIError>;
}

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${fx.gateway.origin}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('allowed models', () => {
  it('a listed model (named by an alias of it, or by its canonical name) is served', async () => {
    expect((await ask('nano-only', 'gpt-4.1-nano')).object).toBe('chat.completion');
    expect((await ask('nano-only', 'gpt-4.1-nano-2025-04-14')).object).toBe('chat.completion');
  });

  it('another catalogue model → 403 model_not_found, OpenAI’s wording for a project without access; nothing sent upstream', async () => {
    const before = fx.upstream.requests.length;
    const error = await failure(client('nano-only').embeddings.create({ model: 'text-embedding-3-small', input: 'x' }));
    expect(error.status).toBe(403);
    expect(expectEnvelope(error.error === undefined ? undefined : { error: error.error })).toEqual({
      message: 'Project `nano-only` does not have access to model `text-embedding-3-small`',
      type: 'invalid_request_error',
      param: null,
      code: 'model_not_found',
    });
    expect(fx.upstream.requests.length).toBe(before);
  });
});

describe('expiry and the disabled flag', () => {
  it('an expired key → 401 invalid_api_key saying when it expired (the secret masked)', async () => {
    const error = await failure(ask('expired'));
    expect(error.status).toBe(401);
    expect(error.code).toBe('invalid_api_key');
    expect(error.message).toContain('expired at 2020-01-01T00:00:00.000Z');
    expect(error.message).not.toContain(secret('expired'));
  });

  it('a key expiring later works', async () => {
    expect((await ask('later')).object).toBe('chat.completion');
  });

  it('a disabled key → 401 invalid_api_key saying it is disabled', async () => {
    const error = await failure(ask('off'));
    expect(error.status).toBe(401);
    expect(error.code).toBe('invalid_api_key');
    expect(error.message).toMatch(/is disabled/);
  });
});

describe('token quota', () => {
  it('reserves input estimate + output cap against the day’s quota, settles to usage, then refuses with insufficient_quota', async () => {
    const before = await metricValue('tollgate_rate_limited_total', { key: 'tokens', limit: 'token_quota' });
    // Each call reserves its input estimate + 1000 tokens and settles to 1000 + 5 (x-fake-prompt-tokens, 5 chunks).
    const call = () => ask('tokens', MODEL, { max_tokens: 1000 }, { 'x-fake-prompt-tokens': '1000' });
    await call();
    await call();
    // 2010 used: a third reservation of 1000 + the input estimate would pass 2500.
    const { response } = await call().withResponse().then(
      () => ({ response: undefined }),
      (e: InstanceType<typeof OpenAI.APIError>) => ({ response: e }),
    );
    const error = response as InstanceType<typeof OpenAI.APIError>;
    expect(error.status).toBe(429);
    expect(error.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota', param: null });
    expect(error.message).toMatch(/^429 You exceeded your current quota, please check your plan and billing details\. Key `tokens` has reached its daily token quota of 2500: 2010 tokens used or reserved, this request may use up to 10\d\d\. It renews at \d{4}-\d\d-\d\dT00:00:00\.000Z\.$/);
    expect(error.headers?.get('x-should-retry')).toBe('false');
    expect(error.headers?.get('retry-after')).toBeNull();
    // A smaller request still fits.
    expect((await ask('tokens', MODEL, { max_tokens: 10 })).object).toBe('chat.completion');
    expect(await metricValue('tollgate_rate_limited_total', { key: 'tokens', limit: 'token_quota' })).toBe(before + 1);
  });
});

describe('budget', () => {
  it('the openai SDK does not retry an insufficient_quota 429 (x-should-retry: false)', async () => {
    const before = fx.upstream.requests.length;
    // $0.0005 a month; 1000 output tokens cost $0.0004: once they are spent, the next such request is refused.
    await ask('budget', MODEL, { max_tokens: 1000 }, { 'x-fake-chunks': '1000' });
    const retrying = fx.gateway.client({ apiKey: secret('budget'), maxRetries: 2 });
    const error = await failure(retrying.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000 }));
    expect(error.status).toBe(429);
    expect(error.code).toBe('insufficient_quota');
    expect(error.message).toContain('monthly budget of $0.0005');
    expect(fx.upstream.requests.length).toBe(before + 1);
    // The SDK resolves only after its retries: one refused attempt reached the fx.gateway, not three.
    const refused = () => fx.gateway.logs.filter((line) => line.key_id === 'budget' && line.status === 429).length;
    await vi.waitFor(() => expect(refused()).toBeGreaterThan(0));
    expect(refused()).toBe(1);
    expect(await metricValue('tollgate_rate_limited_total', { key: 'budget', limit: 'budget' })).toBe(1);
  });
});

describe('per-model limit overrides', () => {
  it('limits.models overrides the key’s figures for that model (aliases fold into it), not for others', async () => {
    const first = await ask('per-model', 'gpt-4.1-nano').withResponse();
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    await ask('per-model', 'gpt-4.1-nano-2025-04-14');
    const error = await failure(ask('per-model', 'gpt-4.1-nano'));
    expect(error.status).toBe(429);
    expect(error.code).toBe('rate_limit_exceeded');
    const other = await client('per-model').embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).withResponse();
    expect(other.response.headers.get('x-ratelimit-limit-requests')).toBe('100');
  });
});

describe('GET /tollgate/me', () => {
  it('a key reads its own policy, usage, remaining budgets and quotas, and rate limits', async () => {
    await ask('me', MODEL, { max_tokens: 50 }, { 'x-fake-prompt-tokens': '2000', 'x-fake-chunks': '20' });
    const res = await fetch(`${fx.gateway.origin}/tollgate/me`, { headers: { authorization: `Bearer ${secret('me')}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    const me = (await res.json()) as Record<string, unknown>;
    // 2000 × $0.10 + 20 × $0.40 per 1M = $0.000208
    expect(me).toMatchObject({
      object: 'tollgate.key.self',
      id: 'me',
      tier: 'tier-2',
      limits: { rpm: 5000, tpm: 2_000_000 },
      models: ['gpt-4.1-nano', 'text-embedding-3-small'],
      expires_at: null,
      usage: { today: { requests: 1, input_tokens: 2000, output_tokens: 20, cost_usd: 0.000208 } },
      budget_usd: { daily: { limit: 2, used: 0.000208, remaining: 1.999792 }, total: { limit: 10, remaining: 9.999792 } },
      token_quota: { monthly: { limit: 1_000_000, used: 2020, remaining: 997_980 } },
      rate_limits: { 'gpt-4.1-nano': { 'x-ratelimit-limit-requests': '5000', 'x-ratelimit-limit-tokens': '2000000' } },
    });
    expect(Object.keys(me.rate_limits as object)).toEqual(['gpt-4.1-nano', 'text-embedding-3-small']);
    expect(JSON.stringify(me)).not.toContain(secret('me'));
  });

  it('401 without a key or with a wrong one, as for /v1', async () => {
    const none = await fetch(`${fx.gateway.origin}/tollgate/me`);
    expect(none.status).toBe(401);
    const wrong = await fetch(`${fx.gateway.origin}/tollgate/me`, { headers: { authorization: 'Bearer tg-wrong-0123456789abcdef' } });
    expect(wrong.status).toBe(401);
    expect(expectEnvelope(await wrong.json())).toMatchObject({ code: 'invalid_api_key' });
  });
});
