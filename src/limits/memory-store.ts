import type { AdmitOutcome, BucketCall, CounterCall, LimiterStore } from './store.js';

/**
 * The limiter in process memory: the same arithmetic as lua/limits.lua, for a
 * single gateway instance (no REDIS_URL) and as the local fallback when Redis fails. Buckets
 * that are full again are forgotten, so memory stays bounded by the active keys.
 */
interface Bucket {
  level: number;
  at: number;
}

/** A usage hash: its fields and when it expires (Infinity: never). */
interface Counters {
  readonly fields: Map<string, number>;
  expiresAt: number;
}

const NONE: readonly CounterCall[] = [];

export function createMemoryStore(clock: () => number = Date.now): LimiterStore {
  const buckets = new Map<string, Bucket>();
  const hashes = new Map<string, Counters>();

  const hashAt = (key: string, now: number): Counters | undefined => {
    const found = hashes.get(key);
    if (found && found.expiresAt <= now) {
      hashes.delete(key);
      return undefined;
    }
    return found;
  };
  const valueOf = (counter: CounterCall, now: number): number => hashAt(counter.key, now)?.fields.get(counter.field) ?? 0;
  const add = (counter: CounterCall, now: number): number => {
    let found = hashAt(counter.key, now);
    if (!found) {
      found = { fields: new Map(), expiresAt: Infinity };
      hashes.set(counter.key, found);
    }
    const value = (found.fields.get(counter.field) ?? 0) + counter.units;
    found.fields.set(counter.field, value);
    if (counter.ttlMs) found.expiresAt = now + counter.ttlMs;
    return value;
  };

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
    for (const [key, found] of hashes) if (found.expiresAt <= now) hashes.delete(key);
  }, 60_000);
  sweep.unref();

  return {
    admit(calls, counters = NONE) {
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
      const values = counters.map((counter) => valueOf(counter, now));
      // A counter refuses before any bucket: waiting cannot help it.
      const over = counters.findIndex((c, j) => c.cap !== undefined && (values[j] as number) + c.units > c.cap);
      if (over !== -1) {
        refusing = calls.length + over;
        waitMs = 0;
      }
      const withValues = (outcome: AdmitOutcome): AdmitOutcome => (counters.length === 0 ? outcome : { ...outcome, values });
      if (refusing !== -1) return withValues({ allowed: false, refusing, waitMs, levels });
      const after = calls.map((call, i) => {
        const level = (levels[i] as number) - call.units * call.windowMs;
        store(call, level, now);
        return level;
      });
      counters.forEach((counter, j) => (values[j] = add(counter, now)));
      return withValues({ allowed: true, refusing: -1, waitMs: 0, levels: after });
    },
    settle(calls, counters = NONE) {
      const now = clock();
      const levels = calls.map((call) => {
        const level = Math.min(call.limit * call.windowMs, levelNow(call, now) + call.units * call.windowMs);
        store(call, level, now);
        return level;
      });
      return counters.length === 0 ? levels : [...levels, ...counters.map((counter) => add(counter, now))];
    },
    async read(keys) {
      const now = clock();
      return keys.map((key) => Object.fromEntries(hashAt(key, now)?.fields ?? []));
    },
    async close() {
      clearInterval(sweep);
      buckets.clear();
      hashes.clear();
    },
  };
}
