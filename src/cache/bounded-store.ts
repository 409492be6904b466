import type { CacheStore } from './store.js';

/**
 * A cache store whose lookups and stores give up after `timeoutMs`. The cache is an optimisation:
 * a store that hangs (a frozen Redis keeps its connection open, so commands are neither answered
 * nor refused) must cost a request no more than this, and the response cache turns the failure
 * into a miss. Purges (admin calls, many commands) are left to the client's own command timeout.
 */
export function boundedCacheStore(store: CacheStore, timeoutMs: number): CacheStore {
  return {
    get: (scope, hash) => {
      const found = store.get(scope, hash);
      return found instanceof Promise ? bounded(found, timeoutMs, 'get') : found;
    },
    set: (scope, hash, answer, ttlMs) => {
      const pending = store.set(scope, hash, answer, ttlMs);
      return pending instanceof Promise ? bounded(pending, timeoutMs, 'set') : pending;
    },
    purge: (scope) => store.purge(scope),
  };
}

export class CacheStoreTimeoutError extends Error {
  constructor(during: string, timeoutMs: number) {
    super(`response cache store ${during} took longer than ${timeoutMs} ms`);
    this.name = 'CacheStoreTimeoutError';
  }
}

function bounded<T>(pending: Promise<T>, timeoutMs: number, during: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CacheStoreTimeoutError(during, timeoutMs)), timeoutMs);
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
