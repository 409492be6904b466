import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis, Result } from 'ioredis';
import type { BatchStore, FileRecord, HeldRecord, ModelTokens } from './store.js';

/**
 * The batch queue in Redis, under the limiter's key prefix:
 * - `{prefix}{batchq|<key id>}:queue`  hash model → tokens enqueued (one hash tag per key)
 * - `{prefix}{batchq|<key id>}:held`   hash reservation/batch id → record JSON
 * - `{prefix}batchq:file:<file id>`    what an uploaded batch file holds (TTL)
 * - `{prefix}batchq:owner:<batch id>`  which key holds a batch (TTL)
 * - `{prefix}batchq:usage:<batch id>`  a completed batch's usage was counted (SET NX, TTL)
 * - `{prefix}batchq:turn:<name>`       the periodic check's turn (SET NX PX)
 * The three scripts (src/limits/lua/batch-*.lua) touch only the two hashes of one key.
 */

const luaPath = (name: string): string => fileURLToPath(new URL(`../limits/lua/${name}`, import.meta.url));

declare module 'ioredis' {
  interface RedisCommander<Context> {
    tollgateBatchReserve(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number[], Context>;
    tollgateBatchCommit(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number, Context>;
    tollgateBatchRelease(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number, Context>;
  }
}

/** Register the batch queue's scripts on a client (the build copies src/limits/lua to dist). */
export function defineBatchCommands(redis: Redis | Cluster): void {
  if (typeof (redis as Partial<Redis>).tollgateBatchReserve === 'function') return;
  redis.defineCommand('tollgateBatchReserve', { lua: readFileSync(luaPath('batch-reserve.lua'), 'utf8') });
  redis.defineCommand('tollgateBatchCommit', { lua: readFileSync(luaPath('batch-commit.lua'), 'utf8') });
  redis.defineCommand('tollgateBatchRelease', { lua: readFileSync(luaPath('batch-release.lua'), 'utf8') });
}

/** Records as the scripts read them: tokens as strings of digits (no float formatting in Lua). */
interface StoredRecord {
  readonly c: number;
  readonly m: readonly [string, string][];
}

function toRecord(id: string, json: string): HeldRecord | undefined {
  try {
    const stored = JSON.parse(json) as StoredRecord;
    const models: ModelTokens[] = stored.m.map(([model, tokens]) => ({ model, tokens: Number(tokens) }));
    return { id, createdMs: Number(stored.c), models };
  } catch {
    return undefined;
  }
}

export interface RedisBatchStoreOptions {
  readonly keyPrefix: string;
  /** Idle time after which a key's queue and records are dropped (default 30 days). */
  readonly idleTtlMs?: number;
}

export function createRedisBatchStore(redis: Redis | Cluster, options: RedisBatchStoreOptions): BatchStore {
  defineBatchCommands(redis);
  const prefix = options.keyPrefix;
  const idleTtlMs = options.idleTtlMs ?? 30 * 86_400_000;
  const tag = (keyId: string): [string, string] => [`${prefix}{batchq|${keyId}}:queue`, `${prefix}{batchq|${keyId}}:held`];
  const fileKey = (fileId: string): string => `${prefix}batchq:file:${fileId}`;
  const ownerKey = (batchId: string): string => `${prefix}batchq:owner:${batchId}`;

  return {
    async putFile(fileId, record, ttlMs) {
      await redis.set(fileKey(fileId), JSON.stringify(record), 'PX', ttlMs);
    },
    async getFile(fileId) {
      const json = await redis.get(fileKey(fileId));
      if (json === null) return undefined;
      try {
        return JSON.parse(json) as FileRecord;
      } catch {
        return undefined;
      }
    },
    async reserve(keyId, holdId, items, createdMs) {
      const record: StoredRecord = { c: createdMs, m: items.map((item) => [item.model, String(item.tokens)]) };
      const args: (string | number)[] = [...tag(keyId), holdId, JSON.stringify(record), idleTtlMs];
      for (const item of items) args.push(item.model, item.tokens, item.limit);
      const reply = await redis.tollgateBatchReserve(2, ...args);
      if (reply[0] === 1) return { ok: true };
      const refused = items[Number(reply[1]) - 1] as (typeof items)[number];
      return { ok: false, model: refused.model, limit: refused.limit, enqueued: Number(reply[2]) };
    },
    async commit(keyId, holdId, batchId) {
      const reply = Number(await redis.tollgateBatchCommit(2, ...tag(keyId), holdId, batchId, idleTtlMs));
      return reply === 1 ? 'committed' : reply === 2 ? 'duplicate' : 'missing';
    },
    async release(keyId, id) {
      return Number(await redis.tollgateBatchRelease(2, ...tag(keyId), id)) === 1;
    },
    async held(keyId) {
      const all = await redis.hgetall(tag(keyId)[1]);
      const records: HeldRecord[] = [];
      for (const id in all) {
        const record = toRecord(id, all[id] as string);
        if (record) records.push(record);
      }
      return records;
    },
    async enqueued(keyId) {
      const all = await redis.hgetall(tag(keyId)[0]);
      return new Map(Object.entries(all).map(([model, tokens]) => [model, Number(tokens)]));
    },
    async setOwner(batchId, keyId, ttlMs) {
      await redis.set(ownerKey(batchId), keyId, 'PX', ttlMs);
    },
    async getOwner(batchId) {
      return (await redis.get(ownerKey(batchId))) ?? undefined;
    },
    async deleteOwner(batchId) {
      await redis.del(ownerKey(batchId));
    },
    async markCounted(batchId, ttlMs) {
      return (await redis.set(`${prefix}batchq:usage:${batchId}`, '1', 'PX', Math.max(1, ttlMs), 'NX')) === 'OK';
    },
    async claim(name, ttlMs) {
      return (await redis.set(`${prefix}batchq:turn:${name}`, '1', 'PX', Math.max(1, ttlMs), 'NX')) === 'OK';
    },
    async close() {},
  };
}
