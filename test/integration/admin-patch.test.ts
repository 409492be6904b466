// Partial updates (issue 14, item 18): PATCH /admin/keys/{id} changes only the fields it names, at
// every depth: a budget window, a token quota window, a rate limit, one model's limits, a metadata
// field. Removing one is explicit (null; "default" for a rate limit, whose null means "no limit").
// What stays is still enforced on the next request.
import { describe, expect, inject, it } from 'vitest';

import { useGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { uniquePrefix } from '../helpers/redis.js';

const ADMIN_TOKEN = 'tg-admin-patch-token-0123456789abcdef';
const NANO = 'gpt-4.1-nano';
const EMBEDDING = 'text-embedding-3-small';

const fx = useGateway(() => ({ redisUrl: inject('redisUrl'), adminToken: ADMIN_TOKEN, config: { limits: { key_prefix: uniquePrefix('admin-patch') } }, resetEachTest: false }));

type Json = Record<string, unknown>;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${fx.gateway.origin}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Json };
}

async function patch(id: string, body: Json): Promise<Json> {
  const answer = await call('PATCH', `/admin/keys/${id}`, body);
  expect(answer.status).toBe(200);
  return answer.body;
}

async function create(id: string, policy: Json): Promise<string> {
  const answer = await call('POST', '/admin/keys', { id, tier: 'tier-1', ...policy });
  expect(answer.status).toBe(201);
  return answer.body.key as string;
}

async function chat(secret: string): Promise<{ status: number; body: unknown }> {
  try {
    await fx.gateway.client({ apiKey: secret }).chat.completions.create({ model: NANO, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    return { status: 200, body: undefined };
  } catch (err) {
    const failed = err as { status?: number; error?: unknown };
    return { status: failed.status ?? 0, body: { error: failed.error } };
  }
}

describe('PATCH changes only the fields named', () => {
  it('budget windows: --budget-monthly keeps the daily budget, which is still enforced; null removes one window', async () => {
    const secret = await create('budgets', { budget_usd: { daily: 0, total: 50 } });
    const refused = await chat(secret);
    expect(refused.status).toBe(429);
    expect(expectEnvelope(refused.body)).toMatchObject({ code: 'insufficient_quota' });

    expect((await patch('budgets', { budget_usd: { monthly: 100 } })).budget_usd).toEqual({ daily: 0, monthly: 100, total: 50 });
    expect((await chat(secret)).status).toBe(429);

    expect((await patch('budgets', { budget_usd: { daily: null } })).budget_usd).toEqual({ monthly: 100, total: 50 });
    expect((await chat(secret)).status).toBe(200);
    const usage = await call('GET', '/admin/keys/budgets/usage');
    expect(Object.keys(usage.body.budget_usd as Json).sort()).toEqual(['monthly', 'total']);
  });

  it('token quotas and metadata fields: the others stay; removing the last one removes the section', async () => {
    await create('quotas', { token_quota: { daily: 1000, monthly: 20000 }, metadata: { team: 'search', owner: 'ana' } });
    const changed = await patch('quotas', { token_quota: { daily: 2000 }, metadata: { owner: null } });
    expect(changed).toMatchObject({ token_quota: { daily: 2000, monthly: 20000 }, metadata: { team: 'search' } });
    expect((changed.metadata as Json).owner).toBeUndefined();
    const emptied = await patch('quotas', { token_quota: { daily: null, monthly: null } });
    expect(emptied.token_quota).toBeUndefined();
    expect(emptied.metadata).toEqual({ team: 'search' });
  });

  it('rate limits, per model too: one figure changes, null is "no limit", "default" returns to the tier; still enforced', async () => {
    const secret = await create('limits', { limits: { rpm: 100, tpm: 50000, models: { [NANO]: { rpm: 1 }, [EMBEDDING]: { tpm: 1000 } } } });
    expect((await patch('limits', { limits: { rpm: 200 } })).limits).toEqual({ rpm: 200, tpm: 50000, models: { [NANO]: { rpm: 1 }, [EMBEDDING]: { tpm: 1000 } } });
    // The per-model rpm of 1 survived the change of the key's rpm: the second request is refused.
    expect((await chat(secret)).status).toBe(200);
    const limited = await chat(secret);
    expect(limited.status).toBe(429);
    expect(expectEnvelope(limited.body)).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });

    const perModel = await patch('limits', { limits: { models: { [NANO]: { tpm: 9000 }, [EMBEDDING]: null } } });
    expect(perModel.limits).toEqual({ rpm: 200, tpm: 50000, models: { [NANO]: { rpm: 1, tpm: 9000 } } });
    const figures = await patch('limits', { limits: { tpm: 'default', rpd: null, models: { [NANO]: { rpm: 'default' } } } });
    expect(figures.limits).toEqual({ rpm: 200, rpd: null, models: { [NANO]: { tpm: 9000 } } });
    // The key's own rpm (200) applies to the model again, with the model's own tpm.
    const usage = await call('GET', `/admin/keys/limits/usage?model=${NANO}`);
    expect((usage.body.rate_limits as Record<string, Json>)[NANO]).toMatchObject({ 'x-ratelimit-limit-requests': '200', 'x-ratelimit-limit-tokens': '9000' });
    // A whole section can still be removed at once.
    expect((await patch('limits', { limits: null })).limits).toBeUndefined();
  });

  it('refuses a removal marker where it means nothing, naming the field', async () => {
    await create('markers', {});
    for (const [body, param] of [
      [{ budget_usd: { daily: 'default' } }, 'budget_usd.daily'],
      [{ limits: { rpm: 'none' } }, 'limits.rpm'],
      [{ limits: { models: { [NANO]: { batch_queue_tokens: 5 } } } }, `limits.models.${NANO}.batch_queue_tokens`],
    ] as const) {
      const answer = await call('PATCH', '/admin/keys/markers', body);
      expect(answer.status).toBe(400);
      expect(expectEnvelope(answer.body)).toMatchObject({ param });
    }
    // POST keeps its shape: "default" is a PATCH word only.
    const created = await call('POST', '/admin/keys', { id: 'markers-2', tier: 'free', limits: { rpm: 'default' } });
    expect(created.status).toBe(400);
    expect(expectEnvelope(created.body)).toMatchObject({ param: 'limits.rpm' });
  });

  it('the OpenAPI document describes the merge and the removal markers', async () => {
    const doc = (await call('GET', '/admin/openapi.json')).body as { paths: Record<string, Record<string, Json>> };
    const operation = doc.paths['/admin/keys/{id}']?.patch as { summary: string; requestBody: { content: { 'application/json': { schema: Json } } } };
    expect(operation.summary).toContain('only the fields given change');
    const text = JSON.stringify(operation.requestBody.content['application/json'].schema);
    expect(text).toContain('"const":"default"');
    expect(text).toContain('null for a window removes that budget');
    expect(text).toContain('null removes this model');
  });
});
