// Small Redis helpers for tests.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A key prefix unique to one test file / suite, e.g. `t:ratelimit:3f9a1c2b:`. */
export function uniquePrefix(name: string): string {
  return `t:${name}:${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key starting with `prefix` (SCAN + UNLINK); returns how many were removed. */
export async function deleteByPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let removed = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) removed += await redis.unlink(...keys);
  } while (cursor !== '0');
  return removed;
}
