import type { CachedAnswer, CacheStore } from './store.js';

interface Held {
  readonly scope: string;
  readonly answer: CachedAnswer;
  readonly expiresAt: number;
  readonly bytes: number;
}

export interface MemoryCacheOptions {
  /** The bound on the bytes held (bodies plus a small fixed cost per entry); least recently used go first. */
  readonly maxBytes: number;
  readonly now?: () => number;
}

/** Per-entry bookkeeping counted toward the bound, so many tiny entries are bounded too. */
const ENTRY_OVERHEAD = 256;

/**
 * The response cache in process memory (one instance, no REDIS_URL): an LRU bounded in bytes,
 * each entry with its own expiry. A Map keeps insertion order: a hit moves its entry to the end,
 * eviction takes from the front.
 */
export function createMemoryCacheStore(options: MemoryCacheOptions): CacheStore & { readonly bytes: number; readonly size: number } {
  const now = options.now ?? Date.now;
  const entries = new Map<string, Held>();
  let bytes = 0;
  const remove = (id: string, held: Held): void => {
    entries.delete(id);
    bytes -= held.bytes;
  };
  return {
    get bytes() {
      return bytes;
    },
    get size() {
      return entries.size;
    },
    get(scope, hash) {
      const id = `${scope}\u0000${hash}`;
      const held = entries.get(id);
      if (!held) return undefined;
      if (held.expiresAt <= now()) {
        remove(id, held);
        return undefined;
      }
      entries.delete(id);
      entries.set(id, held);
      return held.answer;
    },
    set(scope, hash, answer, ttlMs) {
      const id = `${scope}\u0000${hash}`;
      const size = answer.body.length + ENTRY_OVERHEAD;
      if (size > options.maxBytes) return;
      const old = entries.get(id);
      if (old) remove(id, old);
      entries.set(id, { scope, answer, expiresAt: now() + ttlMs, bytes: size });
      bytes += size;
      for (const [oldest, held] of entries) {
        if (bytes <= options.maxBytes) break;
        remove(oldest, held);
      }
    },
    purge(scope) {
      let removed = 0;
      for (const [id, held] of entries) {
        if (scope !== undefined && held.scope !== scope) continue;
        remove(id, held);
        removed++;
      }
      return Promise.resolve(removed);
    },
  };
}
