// The admin API (issue 5, point 4) against the Redis key store: every route answers its success,
// bad input (400 naming the field), a missing or wrong admin token (401) and an unknown key (404);
// config-file keys are read-only (409); without TOLLGATE_ADMIN_TOKEN the API does not exist; the
// OpenAPI document covers every route; secrets and the admin token never reach the log.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLIENT_KEY, startGateway, type TestGateway, useGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const ADMIN_TOKEN = 'tg-admin-token-for-tests-0123456789abcdef';
const PREFIX = uniquePrefix('admin-api');
const STATIC_KEY = 'tg-static-admin-test-key-0123456789';

const KEYS = [
  { id: 'test-key', key: CLIENT_KEY, tier: 'tier-1' as const },
  { id: 'static-app', key: STATIC_KEY, tier: 'tier-2' as const, budget_usd: { daily: 3 }, metadata: { team: 'search' } },
];
const fx = useGateway(() => ({ redisUrl: inject('redisUrl'), adminToken: ADMIN_TOKEN, config: { keys: KEYS, limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 } }, resetEachTest: false }));
let off: TestGateway;
let redis: Redis;

beforeAll(async () => {
  off = await startGateway({ upstreamUrl: fx.upstream.url, redisUrl: inject('redisUrl'), config: { limits: { key_prefix: PREFIX } } });
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await off?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN, gw = fx.gateway): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${gw.origin}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

let n = 0;
/** A fresh key through the API; returns its id and secret. */
async function created(policy: Record<string, unknown> = {}): Promise<{ id: string; secret: string; body: Record<string, unknown> }> {
  const id = `app-${++n}`;
  const answer = await call('POST', '/admin/keys', { id, tier: 'tier-1', ...policy });
  expect(answer.status).toBe(201);
  return { id, secret: answer.body.key as string, body: answer.body };
}

function expectError(answer: Answer, status: number, fields: Record<string, unknown>): void {
  expect(answer.status).toBe(status);
  expect(expectEnvelope(answer.body)).toMatchObject(fields);
}

/** Every route, with a path to a key that exists and a valid body where it takes one. */
const ROUTES = (id: string): [string, string, unknown][] => [
  ['GET', '/admin/keys', undefined],
  ['POST', '/admin/keys', { id: `${id}-new`, tier: 'free' }],
  ['GET', `/admin/keys/${id}`, undefined],
  ['PATCH', `/admin/keys/${id}`, { tier: 'tier-2' }],
  ['DELETE', `/admin/keys/${id}`, undefined],
  ['POST', `/admin/keys/${id}/rotate`, undefined],
  ['GET', `/admin/keys/${id}/usage`, undefined],
  ['GET', '/admin/openapi.json', undefined],
];

describe('admin authentication', () => {
  it('every route answers 401 without the admin token, with a wrong one, and with a client key', async () => {
    const { id } = await created();
    for (const [method, path, body] of ROUTES(id)) {
      for (const token of [null, 'wrong-token', ADMIN_TOKEN.slice(0, -1), CLIENT_KEY]) {
        const answer = await call(method, path, body, token);
        expect({ method, path, token, status: answer.status }).toEqual({ method, path, token, status: 401 });
        expectError(answer, 401, { type: 'invalid_request_error', code: 'invalid_admin_token' });
      }
    }
    // Nothing was changed by the refused calls.
    expect((await call('GET', `/admin/keys/${id}`)).body).toMatchObject({ status: 'active', tier: 'tier-1' });
  });

  it('without TOLLGATE_ADMIN_TOKEN the admin API does not exist (404), whatever token is sent', async () => {
    for (const [method, path, body] of ROUTES('anything')) {
      const answer = await call(method, path, body, ADMIN_TOKEN, off);
      expect({ path, status: answer.status }).toEqual({ path, status: 404 });
      expectError(answer, 404, { message: `Invalid URL (${method} ${path})` });
    }
  });
});

describe('POST /admin/keys', () => {
  it('201: the record and the secret in `key`, shown once; the secret works at once', async () => {
    const answer = await call('POST', '/admin/keys', {
      id: 'created-app',
      tier: 'tier-2',
      limits: { rpm: 100, models: { 'gpt-4.1-nano-2025-04-14': { tpm: 5000 } } },
      models: ['gpt-4.1-nano'],
      budget_usd: { daily: 1.5, monthly: 20, total: null },
      token_quota: { daily: 100000 },
      expires_at: '2099-01-01T00:00:00Z',
      metadata: { team: 'search', owner: 'ana@example.com', description: 'search backend' },
    });
    expect(answer.status).toBe(201);
    const secret = answer.body.key as string;
    expect(secret).toMatch(/^tg-[A-Za-z0-9_-]{43}$/);
    expect(answer.body).toMatchObject({
      object: 'tollgate.key',
      id: 'created-app',
      source: 'api',
      status: 'active',
      tier: 'tier-2',
      models: ['gpt-4.1-nano'],
      budget_usd: { daily: 1.5, monthly: 20, total: null },
      token_quota: { daily: 100000 },
      key_hint: `tg-…${secret.slice(-4)}`,
      revoked_at: null,
    });
    // Shown once: never again by any route.
    for (const path of ['/admin/keys', '/admin/keys/created-app']) expect(JSON.stringify((await call('GET', path)).body)).not.toContain(secret);
    // Stored only as its SHA-256.
    const stored = JSON.stringify(await redis.hgetall(`${PREFIX}{keys}:records`));
    expect(stored).not.toContain(secret);
    expect(stored).toContain(createHash('sha256').update(secret).digest('hex'));
    const completion = await fx.gateway.client({ apiKey: secret }).chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.object).toBe('chat.completion');
  });

  it.each([
    [{ tier: 'tier-1' }, 'id', 'missing_required_parameter'],
    [{ id: 'x' }, 'tier', 'missing_required_parameter'],
    [{ id: 'bad id!', tier: 'free' }, 'id', 'invalid_value'],
    [{ id: 'x1', tier: 'tier-9' }, 'tier', 'invalid_value'],
    [{ id: 'x2', tier: 'free', budget_usd: { daily: -1 } }, 'budget_usd.daily', 'invalid_value'],
    [{ id: 'x3', tier: 'free', budget_usd: { weekly: 1 } }, 'budget_usd.weekly', 'unknown_parameter'],
    [{ id: 'x4', tier: 'free', token_quota: { daily: 1.5 } }, 'token_quota.daily', 'invalid_value'],
    [{ id: 'x5', tier: 'free', limits: { rpm: '10' } }, 'limits.rpm', 'invalid_value'],
    [{ id: 'x6', tier: 'free', expires_at: 'tomorrow' }, 'expires_at', 'invalid_value'],
    [{ id: 'x7', tier: 'free', models: [] }, 'models', 'invalid_value'],
    [{ id: 'x8', tier: 'free', models: ['gpt-4.1-nano', 'gpt-9'] }, 'models[1]', 'invalid_value'],
    [{ id: 'x9', tier: 'free', metadata: { team: 't', cost_center: 'c' } }, 'metadata.cost_center', 'unknown_parameter'],
    [{ id: 'x10', tier: 'free', key: 'tg-my-own-secret-000000' }, 'key', 'unknown_parameter'],
    [{ id: 'x11', tier: 'free', disabled: 'yes' }, 'disabled', 'invalid_value'],
  ])('400 naming the field: %j → %s', async (body, param, code) => {
    const answer = await call('POST', '/admin/keys', body);
    expectError(answer, 400, { type: 'invalid_request_error', param, code });
    expect((answer.body.error as { message: string }).message).toContain(param.replace(/\[\d+\]$/, ''));
    // Nothing was created: the id is unknown, or not an id at all (a 5xx would be neither).
    const id = (body as { id?: unknown }).id;
    if (typeof id === 'string') expect([400, 404]).toContain((await call('GET', `/admin/keys/${encodeURIComponent(id)}`)).status);
  });

  it('400 for a body that is not JSON or not an object', async () => {
    expectError(await call('POST', '/admin/keys', '{"id":'), 400, { type: 'invalid_request_error' });
    expectError(await call('POST', '/admin/keys', '[1,2]'), 400, { type: 'invalid_request_error' });
  });

  it('409 for an id that exists: created before, revoked before, or from the config file', async () => {
    const { id } = await created();
    expectError(await call('POST', '/admin/keys', { id, tier: 'free' }), 409, { code: 'key_exists', param: 'id' });
    await call('DELETE', `/admin/keys/${id}`);
    expectError(await call('POST', '/admin/keys', { id, tier: 'free' }), 409, { code: 'key_exists' });
    expectError(await call('POST', '/admin/keys', { id: 'static-app', tier: 'free' }), 409, { code: 'key_exists' });
  });
});

describe('GET /admin/keys', () => {
  it('lists config-file keys (read-only, no hint) and created keys with their status', async () => {
    const { id } = await created({ metadata: { team: 'ops' } });
    const answer = await call('GET', '/admin/keys');
    expect(answer.status).toBe(200);
    expect(answer.body.object).toBe('list');
    const data = answer.body.data as Record<string, unknown>[];
    expect(data.find((k) => k.id === 'static-app')).toMatchObject({ source: 'config', status: 'active', tier: 'tier-2', budget_usd: { daily: 3 }, metadata: { team: 'search' }, key_hint: null });
    expect(data.find((k) => k.id === id)).toMatchObject({ source: 'api', status: 'active', metadata: { team: 'ops' } });
    const text = JSON.stringify(answer.body);
    expect(text).not.toContain(STATIC_KEY);
    expect(text).not.toContain('sha256');
  });
});

describe('GET /admin/keys/{id}', () => {
  it('200 with the record; 404 for an unknown id; 400 for a malformed id', async () => {
    const { id } = await created({ token_quota: { monthly: 5000 } });
    const answer = await call('GET', `/admin/keys/${id}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id, source: 'api', token_quota: { monthly: 5000 } });
    expect(answer.body.key).toBeUndefined();
    expectError(await call('GET', '/admin/keys/no-such-key'), 404, { code: 'key_not_found', param: 'id' });
    expectError(await call('GET', `/admin/keys/${encodeURIComponent('bad id!')}`), 400, { param: 'id' });
    expect((await call('GET', '/admin/keys/static-app')).body).toMatchObject({ source: 'config', tier: 'tier-2' });
  });
});

describe('PATCH /admin/keys/{id}', () => {
  it('replaces the fields given, removes the ones set to null, keeps the rest; applies to the next request', async () => {
    const { id, secret } = await created({ budget_usd: { daily: 5 }, models: ['gpt-4.1-nano'], metadata: { team: 'a' } });
    const answer = await call('PATCH', `/admin/keys/${id}`, { tier: 'tier-3', models: null, metadata: { team: 'b', owner: 'o' } });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id, tier: 'tier-3', budget_usd: { daily: 5 }, metadata: { team: 'b', owner: 'o' } });
    expect(answer.body.models).toBeUndefined();
    expect(Date.parse(answer.body.updated_at as string)).toBeGreaterThanOrEqual(Date.parse(answer.body.created_at as string));
    // Disabled through PATCH: refused on the next request (same instance: no wait).
    await call('PATCH', `/admin/keys/${id}`, { disabled: true });
    const refused = await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(refused.status).toBe(401);
    expect(expectEnvelope(await refused.json())).toMatchObject({ code: 'invalid_api_key' });
    expect((await call('GET', `/admin/keys/${id}`)).body.status).toBe('disabled');
  });

  it('400 naming the field; 404 unknown; 409 for a config-file key and for a revoked key', async () => {
    const { id } = await created();
    expectError(await call('PATCH', `/admin/keys/${id}`, { tier: null }), 400, { param: 'tier' });
    expectError(await call('PATCH', `/admin/keys/${id}`, { budget_usd: { daily: 'lots' } }), 400, { param: 'budget_usd.daily' });
    expectError(await call('PATCH', `/admin/keys/${id}`, { id: 'renamed' }), 400, { param: 'id', code: 'unknown_parameter' });
    expectError(await call('PATCH', `/admin/keys/${id}`, { limits: { models: { 'no-such-model': { rpm: 1 } } } }), 400, { param: 'limits.models.no-such-model' });
    expectError(await call('PATCH', '/admin/keys/no-such-key', { tier: 'free' }), 404, { code: 'key_not_found' });
    expectError(await call('PATCH', '/admin/keys/static-app', { tier: 'free' }), 409, { code: 'key_read_only' });
    await call('DELETE', `/admin/keys/${id}`);
    expectError(await call('PATCH', `/admin/keys/${id}`, { tier: 'free' }), 409, { code: 'key_revoked' });
  });

  it('400 naming `limits.models.__proto__` on create and change, never a silently dropped limit (issue 14, item 16)', async () => {
    const { id } = await created();
    const models = '{"__proto__":{"rpm":1},"gpt-4.1-nano":{"rpm":2}}';
    const create = await call('POST', '/admin/keys', `{"id":"${id}-proto","tier":"free","limits":{"models":${models}}}`);
    expectError(create, 400, { param: 'limits.models.__proto__', code: 'invalid_value' });
    expectError(await call('GET', `/admin/keys/${id}-proto`), 404, { code: 'key_not_found' });
    expectError(await call('PATCH', `/admin/keys/${id}`, `{"limits":{"models":${models}}}`), 400, { param: 'limits.models.__proto__' });
    expect((await call('GET', `/admin/keys/${id}`)).body.limits).toBeUndefined();
  });
});

describe('DELETE /admin/keys/{id} (revoke)', () => {
  it('revokes: the secret is refused as unknown, the record stays with revoked_at; twice is the same', async () => {
    const { id, secret } = await created();
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    const answer = await call('DELETE', `/admin/keys/${id}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id, status: 'revoked' });
    const revokedAt = answer.body.revoked_at as string;
    expect(Date.parse(revokedAt)).not.toBeNaN();
    const refused = await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(refused.status).toBe(401);
    expect(expectEnvelope(await refused.json())).toMatchObject({ code: 'invalid_api_key' });
    const again = await call('DELETE', `/admin/keys/${id}`);
    expect(again.body).toMatchObject({ status: 'revoked', revoked_at: revokedAt });
  });

  it('404 unknown; 400 malformed id; 409 for a config-file key (which keeps working)', async () => {
    expectError(await call('DELETE', '/admin/keys/no-such-key'), 404, { code: 'key_not_found' });
    expectError(await call('DELETE', `/admin/keys/${encodeURIComponent('x/y z')}`), 400, { param: 'id' });
    expectError(await call('DELETE', '/admin/keys/static-app'), 409, { code: 'key_read_only' });
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${STATIC_KEY}` } })).status).toBe(200);
  });
});

describe('POST /admin/keys/{id}/rotate', () => {
  it('a new secret in `key`: the old one is refused at once, the new one accepted; policy kept', async () => {
    const { id, secret } = await created({ budget_usd: { daily: 2 } });
    const answer = await call('POST', `/admin/keys/${id}/rotate`);
    expect(answer.status).toBe(200);
    const fresh = answer.body.key as string;
    expect(fresh).toMatch(/^tg-/);
    expect(fresh).not.toBe(secret);
    expect(answer.body).toMatchObject({ id, budget_usd: { daily: 2 }, key_hint: `tg-…${fresh.slice(-4)}` });
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
  });

  it('accepts an empty JSON body; 400 for a body with fields; 404 unknown; 409 config-file and revoked keys', async () => {
    const { id } = await created();
    const res = await fetch(`${fx.gateway.origin}/admin/keys/${id}/rotate`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expectError(await call('POST', `/admin/keys/${encodeURIComponent('a b')}/rotate`), 400, { param: 'id' });
    expectError(await call('POST', '/admin/keys/no-such-key/rotate'), 404, { code: 'key_not_found' });
    expectError(await call('POST', '/admin/keys/static-app/rotate'), 409, { code: 'key_read_only' });
    await call('DELETE', `/admin/keys/${id}`);
    expectError(await call('POST', `/admin/keys/${id}/rotate`), 409, { code: 'key_revoked' });
  });
});

describe('GET /admin/keys/{id}/usage', () => {
  it('requests, tokens by type and cost (today, month, total), remaining budget and live rate limits', async () => {
    const { id, secret } = await created({ budget_usd: { daily: 1 }, token_quota: { monthly: 1_000_000 }, limits: { rpm: 50 } });
    const client = fx.gateway.client({ apiKey: secret });
    for (let i = 0; i < 3; i++) {
      await client.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 }, { headers: { 'x-fake-prompt-tokens': '1000', 'x-fake-cached-tokens': '400', 'x-fake-chunks': '10' } });
    }
    const answer = await call('GET', `/admin/keys/${id}/usage`);
    expect(answer.status).toBe(200);
    // 3 × (600 uncached × $0.10 + 400 cached × $0.025 + 10 output × $0.40) per 1M = 3 × 74,000 nano-dollars
    const window = { requests: 3, input_tokens: 3000, cached_tokens: 1200, output_tokens: 30, total_tokens: 3030, cost_usd: 0.000222, reserved_usd: 0 };
    // The day as the gateway named it (a run across midnight UTC sees the new one).
    const today = String((answer.body.usage as { today: { window: unknown } }).today.window);
    expect(today).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(answer.body).toMatchObject({
      object: 'tollgate.key.usage',
      id,
      usage: { today: { window: today, ...window }, month: { window: today.slice(0, 7), ...window }, total: { window: 'total', ...window } },
      budget_usd: { daily: { limit: 1, used: 0.000222, remaining: 0.999778 } },
      token_quota: { monthly: { limit: 1_000_000, used: 3030, remaining: 996_970 } },
      rate_limits: { 'gpt-4.1-nano': { 'x-ratelimit-limit-requests': '50', 'x-ratelimit-remaining-requests': '47' } },
    });
    expect((answer.body.budget_usd as { daily: { resets_at: string } }).daily.resets_at).toBe(new Date(Date.parse(today) + 86_400_000).toISOString());
  });

  it('a key without budgets has its usage counted too; config-file keys have usage; 400 / 404', async () => {
    const { id, secret } = await created();
    await fx.gateway.client({ apiKey: secret }).embeddings.create({ model: 'text-embedding-3-small', input: 'twelve chars' });
    const answer = await call('GET', `/admin/keys/${id}/usage?model=text-embedding-3-small`);
    expect(answer.body).toMatchObject({ usage: { today: { requests: 1, input_tokens: 3, output_tokens: 0 } }, budget_usd: {}, token_quota: {} });
    expect(Object.keys(answer.body.rate_limits as object)).toEqual(['text-embedding-3-small']);
    expect((await call('GET', '/admin/keys/static-app/usage')).status).toBe(200);
    expectError(await call('GET', `/admin/keys/${id}/usage?window=week`), 400, { param: 'window', code: 'unknown_parameter' });
    expectError(await call('GET', '/admin/keys/no-such-key/usage'), 404, { code: 'key_not_found' });
  });
});

describe('GET /admin/openapi.json', () => {
  it('an OpenAPI 3.1 document with every route, its parameters, body and answers', async () => {
    const answer = await call('GET', '/admin/openapi.json');
    expect(answer.status).toBe(200);
    const doc = answer.body as { openapi: string; paths: Record<string, Record<string, Record<string, unknown>>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(['/admin/keys', '/admin/keys/{id}', '/admin/keys/{id}/rotate', '/admin/keys/{id}/usage', '/admin/openapi.json']);
    expect(Object.keys(doc.paths['/admin/keys/{id}'] ?? {}).sort()).toEqual(['delete', 'get', 'patch']);
    const create = doc.paths['/admin/keys']?.post as { requestBody: { content: { 'application/json': { schema: { required: string[]; properties: Record<string, unknown> } } } }; responses: Record<string, unknown> };
    const schema = create.requestBody.content['application/json'].schema;
    expect(schema.required).toEqual(expect.arrayContaining(['id', 'tier']));
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['budget_usd', 'token_quota', 'models', 'limits', 'expires_at', 'disabled', 'metadata']));
    expect(Object.keys(create.responses).sort()).toEqual(['201', '400', '401', '404', '409', '429', '503']);
    expect(JSON.stringify(doc)).not.toContain('x-tollgate-schema');
  });
});

describe('secrets stay out of the log', () => {
  it('no created or rotated secret, and never the admin token, appears in any log line', async () => {
    const { id, secret } = await created();
    const rotated = (await call('POST', `/admin/keys/${id}/rotate`)).body.key as string;
    await fx.gateway.client({ apiKey: rotated }).models.list();
    const logs = fx.gateway.rawLogs();
    expect(logs).not.toContain(secret);
    expect(logs).not.toContain(rotated);
    expect(logs).not.toContain(ADMIN_TOKEN);
    expect(fx.gateway.logs.some((line) => line.admin_action === 'rotate' && line.key_id === id)).toBe(true);
  });
});
