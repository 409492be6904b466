import type { AdmitOutcome, BucketCall, LimiterStore } from './store.js';

/**
 * The limiter in process memory: the same arithmetic as lua/limits.lua, for a
 * single gateway instance (no REDIS_URL) and as the local fallback when Redis fails. Buckets
 * that are full again are forgotten, so memory stays bounded by the active keys.
 */
interface Bucket {
  level: number;
  at: number;
}

export function createMemoryStore(clock: () => number = Date.now): LimiterStore {
  const buckets = new Map<string, Bucket>();

  const levelNow = (call: BucketCall, now: number): number => {
    const capacity = call.limit * call.windowMs;
    const found = buckets.get(call.key);
    if (!found) return capacity;
    return Math.min(capacity, found.level + Math.max(0, now - found.at) * call.limit);
  };
  const store = (call: BucketCall, level: number, now: number): void => {
    if (level >= call.limit * call.windowMs) buckets.delete(call.key);
    else buckets.set(call.key, { level, at: now });
  };

  const sweep = setInterval(() => {
    const now = clock();
    // Forget buckets idle for a day: the longest window, so they are full by then.
    for (const [key, bucket] of buckets) if (now - bucket.at > 86_400_000) buckets.delete(key);
  }, 60_000);
  sweep.unref();

  return {
    admit(calls) {
      const now = clock();
      const levels = calls.map((call) => levelNow(call, now));
      let refusing = -1;
      let waitMs = 0;
      calls.forEach((call, i) => {
        const need = call.units * call.windowMs;
        const level = levels[i] as number;
        if (need > level) {
          const ms = Math.ceil((need - level) / call.limit);
          if (refusing === -1 || ms > waitMs) {
            refusing = i;
            waitMs = ms;
          }
        }
      });
      if (refusing !== -1) return { allowed: false, refusing, waitMs, levels } satisfies AdmitOutcome;
      const after = calls.map((call, i) => {
        const level = (levels[i] as number) - call.units * call.windowMs;
        store(call, level, now);
        return level;
      });
      return { allowed: true, refusing: -1, waitMs: 0, levels: after };
    },
    settle(calls) {
      const now = clock();
      return calls.map((call) => {
        const level = Math.min(call.limit * call.windowMs, levelNow(call, now) + call.units * call.windowMs);
        store(call, level, now);
        return level;
      });
    },
    async close() {
      clearInterval(sweep);
      buckets.clear();
    },
  };
}
