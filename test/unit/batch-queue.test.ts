// The batch queue module (issue 3, point 6) on its own: which calls it watches, reservation and
// refusal, release exactly once on a terminal status, the periodic check against the fake
// upstream through the real upstream client, and the store failure policy. Memory and Redis.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Caller } from '../../src/auth/keys.js';
import { BatchQueueLimitError } from '../../src/batch/errors.js';
import { createBatchQueue, type BatchExchange, type BatchQueue, type BatchQueueOptions, type BatchUsage } from '../../src/batch/queue.js';
import { createRedisBatchStore } from '../../src/batch/redis-store.js';
import { createMemoryBatchStore, type BatchStore } from '../../src/batch/store.js';
import { upstreamBatchLookup } from '../../src/batch/upstream.js';
import { LimiterUnavailableError } from '../../src/limits/resilient-store.js';
import { createUpstream, type Upstream } from '../../src/upstream/client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const NANO = 'gpt-4.1-nano';
const caller = (id: string, limit: number | null = 1000): Caller => ({ id, tier: 'tier-1', limits: { batch_queue_tokens: limit }, maxWaitMs: undefined });
const limitOf = (c: Caller) => c.limits?.batch_queue_tokens ?? null;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const batchObject = (id: string, status: string) => json({ id, object: 'batch', status, input_file_id: 'file-x' });

let fake: FakeUpstream;
let upstream: Upstream;
const redisUrl = inject('redisUrl');
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
const prefix = uniquePrefix('batchq-module');

beforeAll(async () => {
  fake = await startFakeUpstream();
  upstream = createUpstream({ baseUrl: fake.url, connections: 4, connectTimeoutMs: 2000, headersTimeoutMs: 5000, bodyTimeoutMs: 5000 });
});
afterAll(async () => {
  await upstream?.close();
  await fake?.close();
  await deleteByPrefix(redis, prefix);
  await redis.quit();
});

/** Upload a JSONL file through the queue's upload exchange, as the gateway would. */
async function upload(queue: BatchQueue, who: Caller, fileId: string, jsonl: string, purpose = 'batch'): Promise<void> {
  const form = new FormData();
  form.append('file', new Blob([jsonl]), 'input.jsonl');
  form.append('purpose', purpose);
  const encoded = new Response(form);
  const body = Buffer.from(await encoded.arrayBuffer());
  const exchange = (await queue.begin({ method: 'POST', url: '/v1/files', caller: who, contentType: encoded.headers.get('content-type') ?? undefined, body: undefined })) as BatchExchange;
  expect(exchange.observeUpload).toBeTypeOf('function');
  for (let i = 0; i < body.length; i += 50) exchange.observeUpload?.(body.subarray(i, i + 50));
  await exchange.answered(200, json({ id: fileId, object: 'file', purpose }));
}

/** A line of `chars` characters of prompt: tokens = ceil((4 + 4 + 7 + chars) / 4). */
const line = (id: string, chars: number, model = NANO) =>
  JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'x'.repeat(chars) }] } });
const tokensOf = (chars: number) => Math.ceil((15 + chars) / 4);

function suite(name: string, makeStore: () => BatchStore): void {
  describe(`batch queue module: ${name}`, () => {
    let store: BatchStore;
    let queue: BatchQueue;
    const build = (extra: Partial<BatchQueueOptions> = {}) =>
      createBatchQueue({ store, limitOf, charsPerToken: 4, onStoreError: 'fail_closed', resolveModel: (m) => (m === 'nano-alias' ? NANO : m), ...extra });
    beforeAll(() => {
      store = makeStore();
      queue = build();
    });
    afterAll(() => queue.close());

    it('watches uploads, batch creation, retrieval and cancellation only', () => {
      const who = caller('watch');
      const watched = (method: string, url: string, contentType?: string) => queue.begin({ method, url, caller: who, contentType, body: {} }) !== undefined;
      expect(watched('POST', '/v1/files', 'multipart/form-data; boundary=abc')).toBe(true);
      expect(watched('POST', '/v1/files', 'application/json')).toBe(false);
      expect(watched('POST', '/v1/batches')).toBe(true);
      expect(watched('GET', '/v1/batches/batch_1')).toBe(true);
      expect(watched('GET', '/v1/batches/batch_1?x=1')).toBe(true);
      expect(watched('POST', '/v1/batches/batch_1/cancel')).toBe(true);
      expect(watched('GET', '/v1/batches')).toBe(false);
      expect(watched('GET', '/v1/files/file-1')).toBe(false);
      expect(watched('POST', '/v1/chat/completions')).toBe(false);
      expect(queue.begin({ method: 'POST', url: '/v1/batches', caller: undefined, contentType: undefined, body: {} })).toBeUndefined();
    });

    it('reserves a counted file’s tokens, refuses over the limit, releases once on a terminal status', async () => {
      const who = caller('alpha', 1000);
      await upload(queue, who, 'file-a1', `${line('1', 1000)}\n${line('2', 2000, 'nano-alias')}\n`);
      await upload(queue, who, 'file-a2', `${line('1', 100)}\n`);
      const first = tokensOf(1000) + tokensOf(2000);
      expect(first).toBe(758);

      const create = await queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-a1' } });
      expect(create).toBeDefined();
      expect(await queue.enqueued('alpha')).toEqual(new Map([[NANO, first]]));
      await create?.answered(200, batchObject('batch_a1', 'validating'));

      const refused = await queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-a1' } })?.catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(BatchQueueLimitError);
      const error = refused as BatchQueueLimitError;
      expect(error.status).toBe(429);
      expect(error.headers).toEqual({ 'x-should-retry': 'false' });
      expect(error.toBody()).toEqual({
        error: {
          message: `Enqueued token limit reached for ${NANO} in organization alpha. Limit: 1,000 enqueued tokens. Please try again once some in_progress batches have been completed.`,
          type: 'tokens',
          param: null,
          code: 'token_limit_exceeded',
        },
      });
      expect(await queue.enqueued('alpha')).toEqual(new Map([[NANO, first]]));

      // Non-terminal answers change nothing; a terminal one seen by another key releases the owner's.
      const retrieve = await queue.begin({ method: 'GET', url: '/v1/batches/batch_a1', caller: who, contentType: undefined, body: undefined });
      await retrieve?.answered(200, batchObject('batch_a1', 'in_progress'));
      const cancel = await queue.begin({ method: 'POST', url: '/v1/batches/batch_a1/cancel', caller: who, contentType: undefined, body: undefined });
      await cancel?.answered(200, batchObject('batch_a1', 'cancelling'));
      expect(await queue.enqueued('alpha')).toEqual(new Map([[NANO, first]]));
      const other = await queue.begin({ method: 'GET', url: '/v1/batches/batch_a1', caller: caller('beta'), contentType: undefined, body: undefined });
      await other?.answered(200, batchObject('batch_a1', 'cancelled'));
      expect(await queue.enqueued('alpha')).toEqual(new Map());
      expect(await queue.releaseBatch('batch_a1', 'alpha')).toBe(false);

      // Now there is room again.
      const again = await queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-a1' } });
      await again?.answered(200, batchObject('batch_a1b', 'validating'));
      expect(await queue.enqueued('alpha')).toEqual(new Map([[NANO, first]]));
      const small = await queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-a2' } });
      await small?.answered(200, batchObject('batch_a2', 'validating'));
      expect(await queue.enqueued('alpha')).toEqual(new Map([[NANO, first + tokensOf(100)]]));
    });

    it('a batch without an owner entry (lost, expired) is released from the retrieving key', async () => {
      await store.reserve('theta', 'hold:theta', [{ model: NANO, tokens: 42, limit: 100 }], Date.now());
      expect(await store.commit('theta', 'hold:theta', 'batch_theta')).toBe('committed');
      const elsewhere = await queue.begin({ method: 'GET', url: '/v1/batches/batch_theta', caller: caller('iota'), contentType: undefined, body: undefined });
      await elsewhere?.answered(200, batchObject('batch_theta', 'completed'));
      expect(await queue.enqueued('theta')).toEqual(new Map([[NANO, 42]]));
      const own = await queue.begin({ method: 'GET', url: '/v1/batches/batch_theta', caller: caller('theta'), contentType: undefined, body: undefined });
      await own?.answered(200, batchObject('batch_theta', 'failed'));
      expect(await queue.enqueued('theta')).toEqual(new Map());
    });

    it('releases at once when the upstream refuses the batch or never answers', async () => {
      const who = caller('gamma', 10_000);
      await upload(queue, who, 'file-g', `${line('1', 400)}\n`);
      for (const [status, body] of [[400, json({ error: { message: 'bad' } })], [undefined, undefined], [200, json({ not: 'a batch' })]] as const) {
        const create = await queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-g' } });
        expect(await queue.enqueued('gamma')).toEqual(new Map([[NANO, tokensOf(400)]]));
        await create?.answered(status, body);
        expect(await queue.enqueued('gamma'), `answer ${String(status)}`).toEqual(new Map());
      }
    });

    it('makes no reservation for unknown files, other purposes, invalid files, or keys without a limit', async () => {
      const who = caller('delta', 10);
      await upload(queue, who, 'file-ft', `${line('1', 400)}\n`, 'fine-tune');
      await upload(queue, who, 'file-bad', `${line('1', 400)}\nnot json\n`);
      for (const fileId of ['file-ft', 'file-bad', 'file-never-seen']) {
        expect(await queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: fileId } }), fileId).toBeUndefined();
      }
      await upload(queue, who, 'file-big', `${line('1', 400)}\n`);
      await expect(queue.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-big' } })).rejects.toBeInstanceOf(BatchQueueLimitError);
      const unlimited = caller('epsilon', null);
      expect(await queue.begin({ method: 'POST', url: '/v1/batches', caller: unlimited, contentType: 'application/json', body: { input_file_id: 'file-big' } })).toBeUndefined();
      expect(await queue.enqueued('delta')).toEqual(new Map());
    });

    it('reports a completed batch’s usage once, seen on retrieval or by the periodic check, within 30 days of completion', async () => {
      const seen: BatchUsage[] = [];
      const now = Math.floor(Date.now() / 1000);
      const usage = { input_tokens: 100, input_tokens_details: { cached_tokens: 40 }, output_tokens: 7, total_tokens: 107 };
      const reported = { inputTokens: 100, cachedTokens: 40, outputTokens: 7 };
      const answer = (body: Record<string, unknown>) => json({ object: 'batch', input_file_id: 'file-x', ...body });
      const counting = build({
        onUsage: (u) => seen.push(u),
        keyIds: ['usage-c'],
        lookup: async (id) => ({ status: 200, body: answer({ id, status: 'completed', model: NANO, completed_at: now, usage }) }),
      });
      const who = caller('usage-a', null);
      const retrieve = async (body: Record<string, unknown>, by = who) => {
        const exchange = await counting.begin({ method: 'GET', url: `/v1/batches/${String(body.id)}`, caller: by, contentType: undefined, body: undefined });
        await exchange?.answered(200, answer(body));
      };
      await retrieve({ id: 'batch_u1', status: 'in_progress', usage });
      await retrieve({ id: 'batch_u1', status: 'completed' });
      expect(seen).toEqual([]);
      const done = { id: 'batch_u1', status: 'completed', model: 'gpt-4.1-nano', completed_at: now, usage };
      await Promise.all([retrieve(done), retrieve(done), retrieve(done, caller('usage-b', null))]);
      expect(seen).toEqual([{ batchId: 'batch_u1', keyId: 'usage-a', model: NANO, usage: reported }]);
      // Completed longer ago than the marks are kept: never counted.
      await retrieve({ ...done, id: 'batch_u2', completed_at: now - 31 * 86_400 });
      expect(seen).toHaveLength(1);
      // No model on the object: the one model of its input file, as counted.
      await upload(counting, who, 'file-usage', `${line('a', 40, 'nano-alias')}\n`);
      await retrieve({ id: 'batch_u3', status: 'completed', input_file_id: 'file-usage', usage });
      expect(seen[1]).toMatchObject({ batchId: 'batch_u3', model: NANO });
      // The periodic check counts what it finds completed, for the key holding the batch.
      expect(await store.reserve('usage-c', 'hold:usage-c', [{ model: NANO, tokens: 10, limit: 100 }], Date.now())).toEqual({ ok: true });
      expect(await store.commit('usage-c', 'hold:usage-c', 'batch_u4')).toBe('committed');
      expect(await counting.check()).toEqual({ asked: 1, released: 1 });
      expect(seen[2]).toEqual({ batchId: 'batch_u4', keyId: 'usage-c', model: NANO, usage: reported });
      await retrieve({ ...done, id: 'batch_u4' });
      expect(seen).toHaveLength(3);
    });

    it('the periodic check asks the upstream and releases terminal, unknown, stale and orphaned records', async () => {
      let now = Date.now();
      const checked = build({ lookup: upstreamBatchLookup(upstream, { apiKey: undefined, organization: undefined, project: undefined }), keyIds: ['zeta'], clock: () => now, holdTtlMs: 60_000, maxAgeMs: 3_600_000 });
      const who = caller('zeta', 1_000_000);
      await upload(checked, who, 'file-z', `${line('1', 40)}\n`);
      const each = tokensOf(40);
      // Three real batches in the fake: one stays in progress, one completes, one is cancelled.
      const made: string[] = [];
      for (const meta of ['keep', 'done', 'gone']) {
        const created = await fetch(`${fake.url}/batches`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ input_file_id: 'file-z', endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { meta } }),
        });
        const batch = (await created.json()) as { id: string };
        const exchange = await checked.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-z' } });
        await exchange?.answered(200, batchObject(batch.id, 'validating'));
        made.push(batch.id);
      }
      // One the upstream never heard of, and one hold whose create call never got its answer.
      await (await checked.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-z' } }))?.answered(200, batchObject('batch_unknown_upstream', 'validating'));
      await checked.begin({ method: 'POST', url: '/v1/batches', caller: who, contentType: 'application/json', body: { input_file_id: 'file-z' } });
      expect(await checked.enqueued('zeta')).toEqual(new Map([[NANO, 5 * each]]));

      const move = (id: string, status: string) =>
        fetch(`${fake.url}/__fake/batches/${id}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status }) });
      expect((await move(made[0] as string, 'in_progress')).status).toBe(200);
      expect((await move(made[1] as string, 'completed')).status).toBe(200);
      expect((await move(made[2] as string, 'cancelled')).status).toBe(200);

      expect(await checked.check()).toEqual({ asked: 4, released: 3 });
      expect(await checked.enqueued('zeta')).toEqual(new Map([[NANO, 2 * each]]));
      // The provisional hold goes once it is older than holdTtlMs; the live batch after maxAgeMs.
      now += 61_000;
      expect(await checked.check()).toEqual({ asked: 1, released: 1 });
      expect((await store.held('zeta')).map((r) => r.id)).toEqual([made[0]]);
      now += 3_600_000;
      expect(await checked.check()).toEqual({ asked: 0, released: 1 });
      expect(await checked.enqueued('zeta')).toEqual(new Map());
      await checked.close();
    });
  });
}

suite('memory', () => createMemoryBatchStore());
suite('redis', () => createRedisBatchStore(redis, { keyPrefix: prefix }));

describe('batch queue module: timer and failure policy', () => {
  it('runs the periodic check on its own every checkIntervalMs', async () => {
    const store = createRedisBatchStore(redis, { keyPrefix: uniquePrefix('batchq-timer') });
    const created = await fetch(`${fake.url}/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: 'file-t', endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { timer: String(Math.random()) } }),
    });
    const batch = (await created.json()) as { id: string };
    await store.reserve('eta', 'hold:t', [{ model: NANO, tokens: 50, limit: 100 }], Date.now());
    await store.commit('eta', 'hold:t', batch.id);
    const queue = createBatchQueue({
      store,
      limitOf,
      charsPerToken: 4,
      onStoreError: 'fail_closed',
      lookup: upstreamBatchLookup(upstream, { apiKey: undefined, organization: undefined, project: undefined }),
      keyIds: ['eta'],
      checkIntervalMs: 50,
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(await queue.enqueued('eta')).toEqual(new Map([[NANO, 50]]));
      await fetch(`${fake.url}/__fake/batches/${batch.id}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'expired' }) });
      const deadline = Date.now() + 3000;
      while ((await queue.enqueued('eta')).size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(await queue.enqueued('eta')).toEqual(new Map());
    } finally {
      await queue.close();
    }
  });

  it('when the store fails at reservation: 503 fail_closed, unreserved fail_open; recording errors never reach the client', async () => {
    // A real client pointed at a port where no Redis listens: every command fails at once.
    const dead = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const errors: string[] = [];
    const make = (policy: 'fail_closed' | 'fail_open') =>
      createBatchQueue({ store: createRedisBatchStore(dead, { keyPrefix: 'x:' }), limitOf, charsPerToken: 4, onStoreError: policy, onError: (_e, during) => errors.push(during) });
    const body = { input_file_id: 'file-1' };
    await expect(make('fail_closed').begin({ method: 'POST', url: '/v1/batches', caller: caller('k'), contentType: 'application/json', body })).rejects.toBeInstanceOf(LimiterUnavailableError);
    expect(await make('fail_open').begin({ method: 'POST', url: '/v1/batches', caller: caller('k'), contentType: 'application/json', body })).toBeUndefined();
    const retrieve = await make('fail_closed').begin({ method: 'GET', url: '/v1/batches/b', caller: caller('k'), contentType: undefined, body: undefined });
    await expect(retrieve?.answered(200, batchObject('b', 'completed'))).resolves.toBeUndefined();
    expect(errors).toEqual(['batch-file-lookup', 'batch-file-lookup', 'batch-release']);
    dead.disconnect();
  });
});
