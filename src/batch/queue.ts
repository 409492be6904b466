import { randomUUID } from 'node:crypto';
import type { Caller } from '../auth/keys.js';
import { LimiterUnavailableError } from '../limits/resilient-store.js';
import { BatchQueueLimitError } from './errors.js';
import { HOLD_PREFIX, type BatchStore } from './store.js';
import { createUsageCounter, MAX_ID_LENGTH, parseObject, readBatch, type BatchObject, type BatchUsage } from './usage.js';
import { createUploadCounter, type UploadCount } from './upload-counter.js';

/**
 * The batch queue limit (issue 3, point 6), mirroring OpenAI's: per key and model, the input
 * tokens of the key's pending batches may not exceed the key's `batch_queue_tokens` (tier or
 * per-key override; null = no limit).
 *
 * 1. `POST /v1/files` (multipart): the upload is counted while it streams upstream (JSONL, line
 *    by line; see jsonl-counter.ts for what counts). When the upstream answers 200 with a file
 *    object of purpose `batch`, tollgate records file id → tokens per model (TTL `fileTtlMs`).
 * 2. `POST /v1/batches`: the file's tokens are reserved against the key's limit per model, in one
 *    atomic step, before the request is forwarded; over the limit, OpenAI's
 *    `token_limit_exceeded` error (429, x-should-retry: false) and the upstream never sees it.
 *    The upstream refuses (≥ 400) or fails to answer: released at once. 200: the reservation
 *    becomes the batch's record (batch id → key, tokens per model).
 * 3. Released exactly once, when tollgate sees the batch in a terminal status (completed, failed,
 *    expired, cancelled): in the answer of `GET /v1/batches/{id}` or `POST /v1/batches/{id}/cancel`
 *    through the gateway (by any key: the owner is found by batch id), or in the periodic check, which asks the upstream about every
 *    batch still held (one instance per interval). The check also releases batches the upstream
 *    no longer knows (404), records older than `maxAgeMs` (a backstop when the upstream cannot
 *    be asked) and provisional reservations whose create call never got an answer recorded
 *    (a crash mid-call) after `holdTtlMs`.
 * 4. Batch calls never touch the per-minute buckets (they are not `limited` endpoints).
 * 5. No reservation for a file tollgate did not count: uploaded before tollgate (or its record
 *    expired), purpose other than `batch`, not a valid batch file (any line not a JSON object with
 *    an object `body` naming a `model`: OpenAI fails such a batch at validation), or a file with
 *    no tokens. Nor when the key has no queue limit.
 *
 * 6. Usage at the Batch prices: when tollgate sees a batch `completed` with a `usage` object (in
 *    any of the places of point 3), `onUsage` reports it once per batch id (usage.ts), charged
 *    to the key that created it through tollgate, else the key that retrieved it.
 *
 * Redis failures: at reservation time the limiter's policy applies (fail_closed: 503;
 * fail_open: the batch goes through unreserved). Recording and releasing never fail a client's
 * call: errors are reported to `onError`, and the periodic check repairs what was missed.
 */

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'cancelled']);

/** What the queue needs to know about one `/v1` call. */
export interface BatchCall {
  readonly method: string;
  /** The URL as received: `/v1/...`, with any query string. */
  readonly url: string;
  readonly caller: Caller | undefined;
  readonly contentType: string | undefined;
  /** The parsed JSON body (`JsonBody.value`), when the body is JSON. */
  readonly body: unknown;
}

/** The queue's part in one call it watches. */
export interface BatchExchange {
  /** Uploads only: give it a copy of every request chunk on its way upstream (never throws). */
  readonly observeUpload: ((chunk: Buffer) => void) | undefined;
  /**
   * The upstream's answer, read whole (`status` undefined when none came: unreachable, timeout,
   * client gone). Resolves once the store is up to date, so the client's next call sees it;
   * never rejects. Call exactly once per exchange.
   */
  answered(status: number | undefined, body?: Buffer): Promise<void>;
}

/** Asks the upstream `GET /batches/{id}` (the periodic check). */
export type BatchLookup = (batchId: string) => Promise<{ readonly status: number; readonly body: Buffer }>;

export interface CheckReport {
  /** Batches the upstream was asked about. */
  readonly asked: number;
  readonly released: number;
}

export type { BatchUsage } from './usage.js';

export interface BatchQueueOptions {
  readonly store: BatchStore;
  /** The key's queue limit (`limiter.figures`); null = no limit. */
  readonly limitOf: (caller: Caller) => number | null | undefined;
  readonly charsPerToken: number;
  /** Identity of a line's `body.model` (catalogue name, so aliases share one queue). */
  readonly resolveModel?: (model: string) => string;
  /** Longest JSONL line held whole while counting (default 32 MiB). */
  readonly maxLineBytes?: number;
  /** How long an upload's count is kept (default 30 days). */
  readonly fileTtlMs?: number;
  /** Limiter policy when the store fails at reservation time. */
  readonly onStoreError: 'fail_closed' | 'fail_open';
  /** Periodic check interval; 0 or without `lookup`/`keyIds`: no periodic check. */
  readonly checkIntervalMs?: number;
  readonly lookup?: BatchLookup;
  /** The keys whose held batches the periodic check visits (the configured key ids). */
  readonly keyIds?: readonly string[];
  /** Or, when keys come and go at run time, where the check reads them from (wins over `keyIds`). */
  readonly listKeyIds?: () => Promise<readonly string[]>;
  /** Provisional reservations older than this are released by the check (default 15 min). */
  readonly holdTtlMs?: number;
  /** Batch records older than this are released by the check whatever the upstream says (default 7 days). */
  readonly maxAgeMs?: number;
  readonly onError?: (error: unknown, during: string) => void;
  /** A batch refused for the queue limit (count it). */
  readonly onRefused?: (keyId: string, model: string) => void;
  /** A completed batch's usage, once per batch (count it at the Batch prices). */
  readonly onUsage?: (usage: BatchUsage) => void;
  readonly clock?: () => number;
}

export interface BatchQueue {
  /**
   * Undefined (synchronously) for calls the queue does not watch; otherwise the exchange, or
   * undefined when there is nothing to do for this call. Rejects with BatchQueueLimitError (429)
   * when a batch is over the key's limit, or LimiterUnavailableError (503, fail_closed).
   */
  begin(call: BatchCall): Promise<BatchExchange | undefined> | undefined;
  /** Release a batch's reservation now (idempotent); the owner is found by the batch id. */
  releaseBatch(batchId: string, fallbackKeyId?: string): Promise<boolean>;
  /** One pass of the periodic check (the timer runs it every `checkIntervalMs`). */
  check(): Promise<CheckReport>;
  /** Tokens enqueued per model for a key. */
  enqueued(keyId: string): Promise<Map<string, number>>;
  /** The models a batch input file's lines name, as counted when it was uploaded through tollgate; undefined when it was not. */
  fileModels(fileId: string): Promise<readonly string[] | undefined>;
  /** Stop the periodic check and close the store. */
  close(): Promise<void>;
}

const DAY_MS = 86_400_000;
const BATCH_ITEM = /^\/v1\/batches\/[^/]+(\/cancel)?$/;

export function createBatchQueue(options: BatchQueueOptions): BatchQueue {
  const { store, charsPerToken } = options;
  const clock = options.clock ?? Date.now;
  const fileTtlMs = options.fileTtlMs ?? 30 * DAY_MS;
  const holdTtlMs = options.holdTtlMs ?? 15 * 60_000;
  const maxAgeMs = options.maxAgeMs ?? 7 * DAY_MS;
  const ownerTtlMs = maxAgeMs + DAY_MS;
  const onError = options.onError ?? (() => {});
  const counterOptions = { charsPerToken, resolveModel: options.resolveModel, maxLineBytes: options.maxLineBytes };

  const storeFailed = (error: unknown, during: string): undefined => {
    onError(error, during);
    if (options.onStoreError === 'fail_closed') throw new LimiterUnavailableError();
    return undefined;
  };

  /** Release what a key holds under `id`; the batch's owner entry goes with it. */
  const releaseHeld = async (keyId: string, id: string): Promise<boolean> => {
    const released = await store.release(keyId, id);
    if (!id.startsWith(HOLD_PREFIX)) await store.deleteOwner(id);
    return released;
  };

  /** Release a batch's reservation; a terminal batch object seen on the way has its usage counted first. */
  const releaseBatch = async (batchId: string, fallbackKeyId?: string, seen?: BatchObject): Promise<boolean> => {
    const owner = await store.getOwner(batchId);
    const keyId = owner ?? fallbackKeyId;
    if (seen && keyId !== undefined) await countUsage(keyId, seen);
    if (owner !== undefined) return releaseHeld(owner, batchId);
    return fallbackKeyId === undefined ? false : store.release(fallbackKeyId, batchId);
  };

  const countUsage = options.onUsage ? createUsageCounter({ store, onUsage: options.onUsage, onError, clock }) : async () => {};

  const upload = (call: BatchCall): Promise<BatchExchange> | undefined => {
    const counter = createUploadCounter(call.contentType, counterOptions);
    if (!counter) return undefined;
    return Promise.resolve({
      observeUpload: (chunk: Buffer) => counter.push(chunk),
      async answered(status, body) {
        // Always finish: it ends the parser, whatever the answer.
        const counted = counter.finish().catch((): UploadCount => ({ purpose: undefined, file: undefined }));
        try {
          const file = status === 200 ? parseObject(body) : undefined;
          if (!file || typeof file.id !== 'string' || file.id.length === 0 || file.id.length > MAX_ID_LENGTH) return;
          const count = await counted;
          // The upstream's file object is authoritative on the purpose; the form field otherwise.
          const purpose = typeof file.purpose === 'string' ? file.purpose : count.purpose;
          const models = count.file?.valid ? count.file.models.filter((m) => m.tokens > 0) : [];
          if (purpose !== 'batch' || models.length === 0) return;
          await store.putFile(file.id, { models }, fileTtlMs);
        } catch (error) {
          onError(error, 'batch-file-record');
        }
      },
    });
  };

  const create = async (caller: Caller, body: unknown): Promise<BatchExchange | undefined> => {
    const limit = options.limitOf(caller);
    if (limit === null || limit === undefined) return undefined;
    const fileId = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).input_file_id : undefined;
    if (typeof fileId !== 'string' || fileId.length === 0 || fileId.length > MAX_ID_LENGTH) return undefined;
    let file;
    try {
      file = await store.getFile(fileId);
    } catch (error) {
      return storeFailed(error, 'batch-file-lookup');
    }
    const items = (file?.models ?? []).filter((m) => m.tokens > 0).map((m) => ({ model: m.model, tokens: m.tokens, limit }));
    if (items.length === 0) return undefined;
    const holdId = HOLD_PREFIX + randomUUID();
    let outcome;
    try {
      outcome = await store.reserve(caller.id, holdId, items, clock());
    } catch (error) {
      return storeFailed(error, 'batch-reserve');
    }
    if (!outcome.ok) {
      options.onRefused?.(caller.id, outcome.model);
      throw new BatchQueueLimitError(outcome.model, caller.id, outcome.limit);
    }
    return {
      observeUpload: undefined,
      async answered(status, answer) {
        try {
          const batch = status === 200 ? readBatch(answer) : undefined;
          if (!batch) {
            await store.release(caller.id, holdId);
            return;
          }
          const committed = await store.commit(caller.id, holdId, batch.id);
          if (committed !== 'committed') return;
          await store.setOwner(batch.id, caller.id, ownerTtlMs);
          if (TERMINAL_STATUSES.has(batch.status)) await releaseBatch(batch.id, caller.id, batch);
        } catch (error) {
          // The periodic check releases the provisional hold after holdTtlMs.
          onError(error, 'batch-commit');
        }
      },
    };
  };

  const watchStatus = (caller: Caller): Promise<BatchExchange> =>
    Promise.resolve({
      observeUpload: undefined,
      async answered(status, body) {
        if (status !== 200) return;
        const batch = readBatch(body);
        if (!batch || !TERMINAL_STATUSES.has(batch.status)) return;
        try {
          await releaseBatch(batch.id, caller.id, batch);
        } catch (error) {
          onError(error, 'batch-release');
        }
      },
    });

  let running: Promise<CheckReport> | undefined;
  const check = async (): Promise<CheckReport> => {
    let asked = 0;
    let released = 0;
    const keyIds = options.listKeyIds ? await options.listKeyIds() : (options.keyIds ?? []);
    for (const keyId of keyIds) {
      try {
        for (const record of await store.held(keyId)) {
          const age = clock() - record.createdMs;
          let done = false;
          let seen: BatchObject | undefined;
          if (record.id.startsWith(HOLD_PREFIX)) done = age > holdTtlMs;
          else if (age > maxAgeMs) done = true;
          else if (options.lookup) {
            asked++;
            try {
              const answer = await options.lookup(record.id);
              seen = answer.status === 200 ? readBatch(answer.body) : undefined;
              done = answer.status === 404 || TERMINAL_STATUSES.has(seen?.status ?? '');
            } catch (error) {
              onError(error, 'batch-check-lookup');
            }
          }
          if (!done) continue;
          if (seen) await countUsage(keyId, seen);
          if (await releaseHeld(keyId, record.id)) released++;
        }
      } catch (error) {
        onError(error, 'batch-check');
      }
    }
    return { asked, released };
  };

  const interval = options.checkIntervalMs ?? 0;
  let timer: NodeJS.Timeout | undefined;
  if (interval > 0 && options.lookup && ((options.keyIds?.length ?? 0) > 0 || options.listKeyIds)) {
    timer = setInterval(() => {
      if (running) return;
      running = store
        .claim('check', Math.max(1, interval - Math.min(1000, Math.floor(interval / 10))))
        .then((mine) => (mine ? check() : { asked: 0, released: 0 }))
        .catch((error: unknown) => {
          onError(error, 'batch-check');
          return { asked: 0, released: 0 };
        })
        .finally(() => {
          running = undefined;
        });
    }, interval);
    timer.unref();
  }

  return {
    begin(call) {
      if (!call.caller) return undefined;
      const query = call.url.indexOf('?');
      const path = query === -1 ? call.url : call.url.slice(0, query);
      if (call.method === 'POST' && path === '/v1/files') return upload(call);
      if (call.method === 'POST' && path === '/v1/batches') return create(call.caller, call.body);
      if (BATCH_ITEM.test(path) && (call.method === 'GET' ? !path.endsWith('/cancel') : call.method === 'POST' && path.endsWith('/cancel'))) {
        return watchStatus(call.caller);
      }
      return undefined;
    },
    releaseBatch,
    check,
    enqueued: (keyId) => store.enqueued(keyId),
    async fileModels(fileId) {
      const file = await store.getFile(fileId);
      return file?.models.map((m) => m.model);
    },
    async close() {
      if (timer) clearInterval(timer);
      await running;
      await store.close();
    },
  };
}
