import type { AdmitOutcome, BucketCall, CounterCall, LimiterStore, SharedCall, SharedOutcome } from './store.js';

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

/** An active entity of a shared ceiling (lua/fair-share.lua's record). */
interface ShareRecord {
  activeUntil: number;
  weight: number;
  at: number;
  marker: number;
  markerUntil: number;
  /** Unused guarantee per bucket, in unit-milliseconds. */
  guarantees: number[];
}

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

  const shares = new Map<string, Map<string, ShareRecord>>();

  /** lua/fair-share.lua, the same integer arithmetic: admission (mode 1) or settlement (mode 2). */
  const shared = (call: SharedCall, mode: 1 | 2): SharedOutcome => {
    const now = clock();
    const { buckets: calls, claim, settings } = call;
    const K = calls.length;
    const levels = calls.map((c) => levelNow(c, now));
    let state = shares.get(call.stateKey);
    if (!state) {
      state = new Map();
      shares.set(call.stateKey, state);
    }
    const others: ShareRecord[] = [];
    let total = claim.weight;
    let mine: ShareRecord | undefined;
    for (const [entity, rec] of state) {
      if (rec.activeUntil < now) state.delete(entity);
      else if (entity === claim.entity) mine = rec;
      else {
        others.push(rec);
        total += rec.weight;
      }
    }
    const fresh = mine === undefined;
    const settled = (): SharedOutcome => {
      calls.forEach((c, k) => {
        levels[k] = Math.min(c.limit * c.windowMs, (levels[k] as number) + c.units * c.windowMs);
        store(c, levels[k] as number, now);
      });
      return { allowed: true, refusing: -1, waitMs: 0, levels, borrowed: false };
    };
    if (!mine) {
      if (mode === 2) return settled();
      mine = { activeUntil: now + settings.activeMs, weight: claim.weight, at: now, marker: 0, markerUntil: 0, guarantees: calls.map(() => 0) };
    }
    const guarantee = (rec: ShareRecord, weight: number, k: number): [number, number] => {
      const rate = Math.floor(((calls[k] as BucketCall).limit * weight) / total);
      return [Math.min(rate * settings.burstMs, (rec.guarantees[k] ?? 0) + Math.max(0, now - rec.at) * rate), rate];
    };
    const mineNow: number[] = [];
    const rates: number[] = [];
    const reserved: number[] = [];
    for (let k = 0; k < K; k++) {
      const [level, rate] = guarantee(mine, claim.weight, k);
      mineNow.push(level);
      rates.push(rate);
      let sum = 0;
      for (const rec of others) sum += Math.max(0, guarantee(rec, rec.weight, k)[0]);
      reserved.push(sum);
    }
    if (mode === 2) {
      const out = settled();
      calls.forEach((c, k) => {
        (mine as ShareRecord).guarantees[k] = Math.min((rates[k] as number) * settings.burstMs, (mineNow[k] as number) + c.units * c.windowMs);
      });
      mine.at = now;
      state.set(claim.entity, mine);
      return out;
    }
    let refusing = -1;
    let waitMs = 0;
    let borrowed = false;
    if (!fresh && mine.marker > claim.priority && mine.markerUntil > now) {
      refusing = K - 1;
      waitMs = mine.markerUntil - now;
    } else {
      calls.forEach((c, k) => {
        const need = c.units * c.windowMs;
        const level = levels[k] as number;
        if (level - need < (reserved[k] as number)) {
          const ms = Math.ceil((need + (reserved[k] as number) - level) / Math.max(1, rates[k] as number));
          if (refusing === -1 || ms > waitMs) {
            refusing = k;
            waitMs = ms;
          }
        }
      });
    }
    mine.activeUntil = Math.max(mine.activeUntil, now + settings.activeMs);
    mine.weight = claim.weight;
    mine.at = now;
    if (refusing === -1) {
      calls.forEach((c, k) => {
        const need = c.units * c.windowMs;
        if ((mineNow[k] as number) < need) borrowed = true;
        levels[k] = (levels[k] as number) - need;
        const had = mineNow[k] as number;
        (mine as ShareRecord).guarantees[k] = had >= need ? had - need : Math.min(had, 0);
        store(c, levels[k] as number, now);
      });
      if (mine.marker <= claim.priority) {
        mine.marker = 0;
        mine.markerUntil = 0;
      }
    } else {
      mine.guarantees = mineNow;
      if (waitMs <= (call.maxWaitMs ?? 0)) {
        mine.activeUntil = Math.max(mine.activeUntil, now + waitMs + settings.activeMs);
        if (claim.priority > 0 && claim.priority >= mine.marker) {
          mine.marker = claim.priority;
          mine.markerUntil = Math.max(mine.markerUntil, now + waitMs + Math.min(settings.activeMs, waitMs + 100));
        }
      }
    }
    state.set(claim.entity, mine);
    // Refused: what the ceiling has for this entity (beyond the others' guarantees), as its 429 says.
    if (refusing !== -1) levels.forEach((level, k) => (levels[k] = Math.max(0, level - (reserved[k] as number))));
    return { allowed: refusing === -1, refusing, waitMs, levels, borrowed };
  };

  const sweep = setInterval(() => {
    const now = clock();
    for (const [key, state] of shares) {
      for (const [entity, rec] of state) if (rec.activeUntil < now) state.delete(entity);
      if (state.size === 0) shares.delete(key);
    }
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
    admitShared: (call) => shared(call, 1),
    settleShared: (call) => shared(call, 2).levels,
    async read(keys) {
      const now = clock();
      return keys.map((key) => Object.fromEntries(hashAt(key, now)?.fields ?? []));
    },
    async close() {
      clearInterval(sweep);
      buckets.clear();
      hashes.clear();
      shares.clear();
    },
  };
}
