/**
 * Storage of the batch queue: what each uploaded batch file holds, and per key the tokens its
 * pending batches have enqueued. Two implementations with one contract: Redis (shared by every
 * gateway instance; scripts in src/limits/lua/batch-*.lua) and process memory (one instance).
 *
 * Per key, two structures live together (one Redis {hash tag} per key, so every script is
 * cluster-safe):
 * - `queue`: model → tokens enqueued now;
 * - `held`: id → the record of one reservation (its tokens per model and when it was made). The
 *   id is a provisional `hold:` id from reservation until the upstream answers with the batch id,
 *   then the batch id.
 * The queue is always the sum of the held records: reserve, commit and release change both in
 * one atomic step, and release removes the record, so a second release of the same batch finds
 * nothing and changes nothing (exactly once).
 */

/** Tokens of one model in a file or a reservation. */
export interface ModelTokens {
  readonly model: string;
  readonly tokens: number;
}

/** What tollgate counted in an uploaded batch input file. */
export interface FileRecord {
  readonly models: readonly (ModelTokens & { readonly requests: number; readonly outputCap: number })[];
}

export interface ReserveItem extends ModelTokens {
  /** The key's queue limit for this model (enqueued tokens). */
  readonly limit: number;
}

export type ReserveOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** The model whose queue would overflow, its limit and what it holds now. */
      readonly model: string;
      readonly limit: number;
      readonly enqueued: number;
    };

/** One reservation as stored. */
export interface HeldRecord {
  /** A batch id, or a provisional `hold:` id (the upstream has not answered yet). */
  readonly id: string;
  readonly createdMs: number;
  readonly models: readonly ModelTokens[];
}

export const HOLD_PREFIX = 'hold:';

export type CommitOutcome = 'committed' | 'missing' | 'duplicate';

export interface BatchStore {
  putFile(fileId: string, record: FileRecord, ttlMs: number): Promise<void>;
  getFile(fileId: string): Promise<FileRecord | undefined>;
  /**
   * Atomically: when every item's model has room (enqueued + tokens ≤ limit), add the tokens to
   * the key's queue and keep the record under `holdId`; otherwise change nothing.
   */
  reserve(keyId: string, holdId: string, items: readonly ReserveItem[], createdMs: number): Promise<ReserveOutcome>;
  /**
   * The upstream accepted the batch: the hold becomes the batch's record. `missing`: the hold is
   * gone (released meanwhile); `duplicate`: the batch was held already, this hold is given back.
   */
  commit(keyId: string, holdId: string, batchId: string): Promise<CommitOutcome>;
  /** Give a hold's or batch's tokens back. True only for the call that found the record. */
  release(keyId: string, id: string): Promise<boolean>;
  /** Every record the key holds (for the periodic check). */
  held(keyId: string): Promise<HeldRecord[]>;
  /** Tokens enqueued per model for a key. */
  enqueued(keyId: string): Promise<Map<string, number>>;
  /** Which key holds a batch (any instance may see its terminal status). */
  setOwner(batchId: string, keyId: string, ttlMs: number): Promise<void>;
  getOwner(batchId: string): Promise<string | undefined>;
  deleteOwner(batchId: string): Promise<void>;
  /**
   * The one right to count a completed batch's usage: true for the first call per batch id (in
   * `ttlMs`), false for every later one, on any instance.
   */
  markCounted(batchId: string, ttlMs: number): Promise<boolean>;
  /** Take a named turn for `ttlMs` (one instance runs the periodic check per interval). */
  claim(name: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

interface Expiring<T> {
  readonly value: T;
  readonly until: number;
}

/** The batch queue in process memory: the same contract as the Redis store, for one instance. */
export function createMemoryBatchStore(clock: () => number = Date.now): BatchStore {
  const files = new Map<string, Expiring<FileRecord>>();
  const owners = new Map<string, Expiring<string>>();
  const counted = new Map<string, Expiring<true>>();
  const queues = new Map<string, Map<string, number>>();
  const helds = new Map<string, Map<string, HeldRecord>>();

  const live = <T>(map: Map<string, Expiring<T>>, key: string): T | undefined => {
    const found = map.get(key);
    if (!found) return undefined;
    if (found.until <= clock()) {
      map.delete(key);
      return undefined;
    }
    return found.value;
  };
  const queueOf = (keyId: string): Map<string, number> => {
    let queue = queues.get(keyId);
    if (!queue) queues.set(keyId, (queue = new Map()));
    return queue;
  };
  const heldOf = (keyId: string): Map<string, HeldRecord> => {
    let held = helds.get(keyId);
    if (!held) helds.set(keyId, (held = new Map()));
    return held;
  };
  const giveBack = (keyId: string, record: HeldRecord): void => {
    const queue = queueOf(keyId);
    for (const { model, tokens } of record.models) {
      const left = (queue.get(model) ?? 0) - tokens;
      if (left > 0) queue.set(model, left);
      else queue.delete(model);
    }
  };

  const sweep = setInterval(() => {
    const now = clock();
    for (const map of [files, owners, counted] as Map<string, Expiring<unknown>>[]) for (const [key, entry] of map) if (entry.until <= now) map.delete(key);
  }, 3_600_000);
  sweep.unref();

  return {
    async putFile(fileId, record, ttlMs) {
      files.set(fileId, { value: record, until: clock() + ttlMs });
    },
    async getFile(fileId) {
      return live(files, fileId);
    },
    async reserve(keyId, holdId, items, createdMs) {
      const queue = queueOf(keyId);
      for (const item of items) {
        const enqueued = queue.get(item.model) ?? 0;
        if (enqueued + item.tokens > item.limit) return { ok: false, model: item.model, limit: item.limit, enqueued };
      }
      for (const item of items) queue.set(item.model, (queue.get(item.model) ?? 0) + item.tokens);
      heldOf(keyId).set(holdId, { id: holdId, createdMs, models: items.map(({ model, tokens }) => ({ model, tokens })) });
      return { ok: true };
    },
    async commit(keyId, holdId, batchId) {
      const held = heldOf(keyId);
      const record = held.get(holdId);
      if (!record) return 'missing';
      held.delete(holdId);
      if (held.has(batchId)) {
        giveBack(keyId, record);
        return 'duplicate';
      }
      held.set(batchId, { ...record, id: batchId });
      return 'committed';
    },
    async release(keyId, id) {
      const held = helds.get(keyId);
      const record = held?.get(id);
      if (!held || !record) return false;
      held.delete(id);
      giveBack(keyId, record);
      return true;
    },
    async held(keyId) {
      return [...(helds.get(keyId)?.values() ?? [])];
    },
    async enqueued(keyId) {
      return new Map(queues.get(keyId) ?? []);
    },
    async setOwner(batchId, keyId, ttlMs) {
      owners.set(batchId, { value: keyId, until: clock() + ttlMs });
    },
    async getOwner(batchId) {
      return live(owners, batchId);
    },
    async deleteOwner(batchId) {
      owners.delete(batchId);
    },
    async markCounted(batchId, ttlMs) {
      if (live(counted, batchId)) return false;
      counted.set(batchId, { value: true, until: clock() + ttlMs });
      return true;
    },
    async claim() {
      return true;
    },
    async close() {
      clearInterval(sweep);
    },
  };
}
