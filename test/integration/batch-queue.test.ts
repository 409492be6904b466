import OpenAI, { toFile } from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

// The batch queue limit (issue 3, point 6) end to end, with the openai SDK against the gateway
// over the fake upstream and a real Redis: uploads are counted as they stream through, batch
// creation reserves against the key's `batch_queue_tokens` and is refused over it (the upstream
// never sees it), a terminal status seen on retrieve releases, and batch calls count as requests
// without a model: the model's per-minute buckets are left alone.

const KEY = 'tg-batch-key-0123456789abcdef';
const LIMIT = 1500;
const prefix = uniquePrefix('batchq-gw');
let upstream: FakeUpstream;
let gateway: TestGateway;
let client: OpenAI;
const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });

beforeAll(async () => {
  upstream = await startFakeUpstream();
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: inject('redisUrl'),
    config: {
      limits: { key_prefix: prefix },
      keys: [{ id: 'batch-app', key: KEY, tier: 'tier-1', limits: { batch_queue_tokens: LIMIT, rpm: 100, models: { 'gpt-4.1-nano': { rpm: 5 } } } }],
    },
  });
  client = gateway.client({ apiKey: KEY });
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
  await deleteByPrefix(redis, prefix);
  await redis.quit();
});

// 2,000 characters of multi-byte text per line: ceil((4 + 4 + 7 + 2000) / 4) = 504 tokens, so two
// lines (1,008) fit the limit of 1,500 once and not twice.
const TEXT = 'héllo wörld 👋 '.repeat(200).slice(0, 2000);
const LINE_TOKENS = Math.ceil((4 + 4 + 7 + TEXT.length) / 4);
function jsonl(tag: string, lines: number, model = 'gpt-4.1-nano'): string {
  let out = '';
  for (let i = 0; i < lines; i++) {
    out += `${JSON.stringify({ custom_id: `${tag}-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: TEXT }], max_tokens: 100 } })}\n`;
  }
  return out;
}
const enqueued = async (): Promise<number> => Number((await redis.hget(`${prefix}{batchq|batch-app}:queue`, 'gpt-4.1-nano')) ?? 0);
const batchCreates = () => upstream.requests.filter((r) => r.method === 'POST' && r.path === '/v1/batches');
const move = async (id: string, status: string): Promise<void> => {
  const res = await fetch(`${upstream.url}/__fake/batches/${id}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status }) });
  expect(res.status).toBe(200);
};
const create = (fileId: string, options?: OpenAI.RequestOptions) =>
  client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' }, options);

describe('batch queue limit', () => {
  it('counts, reserves, refuses over the limit without reaching the upstream, and releases on a terminal status', async () => {
    expect(LINE_TOKENS).toBe(504);
    const first = await client.files.create({ file: await toFile(Buffer.from(jsonl('a', 2)), 'a.jsonl'), purpose: 'batch' });
    // The alias shares the model's queue; purpose written before the file is read as well.
    const second = await client.files.create({ purpose: 'batch', file: await toFile(Buffer.from(jsonl('b', 2, 'gpt-4.1-nano-2025-04-14')), 'b.jsonl') });
    expect(first.purpose).toBe('batch');

    const accepted = await create(first.id);
    expect(accepted.status).toBe('validating');
    expect(await enqueued()).toBe(2 * LINE_TOKENS);

    const refused = await create(second.id).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const error = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(error.status).toBe(429);
    expect(error.error).toEqual({
      message:
        'Enqueued token limit reached for gpt-4.1-nano in organization batch-app. Limit: 1,500 enqueued tokens. Please try again once some in_progress batches have been completed.',
      type: 'tokens',
      param: null,
      code: 'token_limit_exceeded',
    });
    expect(error.headers?.get('x-should-retry')).toBe('false');
    expect(batchCreates().filter((r) => r.body.toString().includes(second.id))).toHaveLength(0);
    expect(await enqueued()).toBe(2 * LINE_TOKENS);

    // Still running: retrieving changes nothing.
    expect((await client.batches.retrieve(accepted.id)).status).toBe('validating');
    expect(await enqueued()).toBe(2 * LINE_TOKENS);

    await move(accepted.id, 'completed');
    expect((await client.batches.retrieve(accepted.id)).status).toBe('completed');
    expect(await enqueued()).toBe(0);

    const later = await create(second.id);
    expect(later.status).toBe('validating');
    expect(batchCreates().filter((r) => r.body.toString().includes(second.id))).toHaveLength(1);
    expect(await enqueued()).toBe(2 * LINE_TOKENS);
    // The completed batch seen again releases nothing more.
    await client.batches.retrieve(accepted.id);
    expect(await enqueued()).toBe(2 * LINE_TOKENS);

    // Cancelled through the gateway: 'cancelling' holds on, 'cancelled' releases.
    expect((await client.batches.cancel(later.id)).status).toBe('cancelling');
    expect(await enqueued()).toBe(2 * LINE_TOKENS);
    await move(later.id, 'cancelled');
    await client.batches.retrieve(later.id);
    expect(await enqueued()).toBe(0);
  });

  it('releases at once when the upstream refuses the batch', async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl('c', 2)), 'c.jsonl'), purpose: 'batch' });
    const failed = await create(file.id, { headers: { 'x-fake-status': '400' } }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OpenAI.BadRequestError);
    expect(await enqueued()).toBe(0);
  });

  it('reserves nothing for files of another purpose or files uploaded before tollgate', async () => {
    const tuning = await client.files.create({ file: await toFile(Buffer.from(jsonl('d', 4)), 'd.jsonl'), purpose: 'fine-tune' });
    expect(tuning.purpose).toBe('fine-tune');
    // Straight to the upstream, past the gateway: tollgate never saw it.
    const form = new FormData();
    form.append('file', new Blob([jsonl('e', 4)]), 'e.jsonl');
    form.append('purpose', 'batch');
    const direct = (await (await fetch(`${upstream.url}/files`, { method: 'POST', body: form })).json()) as { id: string };
    for (const id of [tuning.id, direct.id]) {
      expect((await create(id)).status).toBe('validating');
    }
    expect(await enqueued()).toBe(0);
  });

  it("counts batch calls as requests without a model, leaving the model's buckets alone (5 requests a minute for gpt-4.1-nano)", async () => {
    const chat = () => client.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }).withResponse();
    const before = await chat();
    expect(before.response.headers.get('x-ratelimit-limit-requests')).toBe('5');
    expect(before.response.headers.get('x-ratelimit-remaining-requests')).toBe('4');
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl('f', 1)), 'f.jsonl'), purpose: 'batch' });
    const batch = await create(file.id);
    await client.batches.retrieve(batch.id);
    await client.batches.cancel(batch.id);
    await client.batches.list();
    await client.files.retrieve(file.id);
    // One request refills every 12 s: the only request taken since is the chat itself.
    const after = await chat();
    expect(after.response.headers.get('x-ratelimit-remaining-requests')).toBe('3');
    // The batch calls went to the bucket of requests without a model (100 a minute).
    const listed = await client.batches.list().withResponse();
    expect(Number(listed.response.headers.get('x-ratelimit-remaining-requests'))).toBeLessThan(100 - 5);
  });
});
