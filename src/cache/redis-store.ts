import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from '../plugins/redis.js';
import { decodeAnswer, encodeAnswer, type CacheStore } from './store.js';

/**
 * The response cache in Redis, shared by every instance: one string per entry,
 * `<prefix>rc|<scope>|<hash>`, with its TTL (`|` never occurs in key ids or group names, so a
 * scope's pattern matches that scope only). Every call is bounded by the client's command timeout.
 */
export function createRedisCacheStore(redis: RedisClient, keyPrefix: string): CacheStore {
  const base = `${keyPrefix}rc|`;
  const keyOf = (scope: string, hash: string): string => `${base}${scope}|${hash}`;
  return {
    async get(scope, hash) {
      const bytes = await redis.getBuffer(keyOf(scope, hash));
      return bytes ? decodeAnswer(bytes) : undefined;
    },
    async set(scope, hash, answer, ttlMs) {
      await redis.set(keyOf(scope, hash), encodeAnswer(answer), 'PX', ttlMs);
    },
    async purge(scope) {
      const pattern = globEscape(scope === undefined ? base : `${base}${scope}|`) + '*';
      let removed = 0;
      // A cluster keeps keys on every master: scan each.
      const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          // One key per call: on a cluster the keys of one batch live on different slots.
          for (const key of keys) removed += await node.unlink(key);
        } while (cursor !== '0');
      }
      return removed;
    },
  };
}

function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
