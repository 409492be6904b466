import { hashTag, settlementId, type CounterCall, type LimiterStore } from '../limits/store.js';
import type { Usage } from '../usage/extract.js';
import { FIELDS, usageKey } from './fields.js';
import { windowTtlMs, type HourWindow, type Window } from './windows.js';

/**
 * Usage of keys without budgets or token quotas: counted in process and written to the store in one
 * batch per key every `intervalMs` (so those keys pay no store call per request), and on close.
 * Counters a failed settlement handed back (Redis down) come here too. Every batch is written with
 * a settlement id; one the store failed to take is kept as it is and written again with the same
 * id, until the store takes it: it counts once whether or not the failed write ran.
 */
export interface UsageRecorder {
  /** `id`: counters of a settlement that may have run, written again only with this id. */
  add(counters: readonly CounterCall[], id?: string): void;
  /**
   * One settled request of a key without caps, in the windows it was admitted in: summed in
   * process (one Map lookup per request), written as counters by the next flush.
   */
  record(keyId: string, windows: readonly Window[], at: number, actual: Usage, cost: number, hour?: HourWindow): void;
  /** Write everything counted so far (reports call it first, so they include this instance's latest). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface RecorderOptions {
  readonly store: LimiterStore;
  /** Prefix of the usage hashes' keys (config limits.key_prefix). */
  readonly keyPrefix: string;
  /** 0: write at once (tests); the gateway batches for every store, memory included. */
  readonly intervalMs: number;
  readonly onError?: (error: unknown) => void;
  /** How long an hourly usage hash is kept after its hour (recorded only when `record` is given the hour). */
  readonly hourlyRetentionMs?: number;
}

interface Pending {
  units: number;
  ttlMs: number | undefined;
}


/** A key's settled usage in one set of windows, summed until the next flush. */
interface Totals {
  readonly keyId: string;
  readonly windows: readonly Window[];
  readonly hour: HourWindow | undefined;
  at: number;
  requests: number;
  input: number;
  cached: number;
  output: number;
  cost: number;
}

export function createUsageRecorder(options: RecorderOptions): UsageRecorder {
  const { store, intervalMs, keyPrefix } = options;
  const hourlyRetentionMs = options.hourlyRetentionMs ?? 0;
  /** Per hour (one object per UTC hour), else per set of windows (one object per UTC day), per key. */
  let totals = new Map<object, Map<string, Totals>>();
  /** tag → "key\0field" → pending units */
  let pending = new Map<string, Map<string, Pending>>();
  /** Batches to write again exactly as they were, by settlement id. */
  const retries = new Map<string, readonly CounterCall[]>();

  /** One batch, with its id; kept for the next flush when the store fails. */
  const write = async (id: string, counters: readonly CounterCall[]): Promise<void> => {
    try {
      await store.settle([], counters, false, id);
      retries.delete(id);
    } catch (error) {
      options.onError?.(error);
      retries.set(id, counters);
    }
  };

  const merge = (counters: readonly CounterCall[]): void => {
    for (const counter of counters) {
      const tag = hashTag(counter.key);
      let group = pending.get(tag);
      if (!group) {
        group = new Map();
        pending.set(tag, group);
      }
      const id = `${counter.key}\u0000${counter.field}`;
      const found = group.get(id);
      if (found) {
        found.units += counter.units;
        found.ttlMs = counter.ttlMs;
      } else {
        group.set(id, { units: counter.units, ttlMs: counter.ttlMs });
      }
    }
  };

  /** Totals become counters: each of the request's windows gets every field. */
  const totalsToCounters = (): void => {
    const all = totals;
    totals = new Map();
    for (const byKey of all.values()) {
      for (const t of byKey.values()) {
        const counters: CounterCall[] = [];
        for (const window of t.windows) {
          const key = usageKey(keyPrefix, t.keyId, window.id);
          const ttlMs = windowTtlMs(window, t.at);
          const add = (field: string, units: number): void => {
            if (units !== 0) counters.push({ key, field, units, ttlMs });
          };
          add(FIELDS.requests, t.requests);
          add(FIELDS.input, t.input);
          add(FIELDS.cached, t.cached);
          add(FIELDS.output, t.output);
          add(FIELDS.cost, t.cost);
          // Without caps nothing is reserved: what budgets and quotas count is the settled usage.
          add(FIELDS.spend, t.cost);
          add(FIELDS.tokens, t.input + t.output);
        }
        if (t.hour) {
          const key = usageKey(keyPrefix, t.keyId, t.hour.id);
          const add = (field: string, units: number): void => {
            if (units !== 0) counters.push({ key, field, units });
          };
          // The expiry is the hash's: set once, with the one field every request writes.
          counters.push({ key, field: FIELDS.requests, units: t.requests, ttlMs: t.hour.endsAt - t.at + hourlyRetentionMs });
          add(FIELDS.input, t.input);
          add(FIELDS.cached, t.cached);
          add(FIELDS.output, t.output);
          add(FIELDS.cost, t.cost);
        }
        merge(counters);
      }
    }
  };

  let flushing: Promise<void> | undefined;
  const flushNow = async (): Promise<void> => {
    totalsToCounters();
    const batch = pending;
    pending = new Map();
    const writes = [...retries].map(([id, counters]) => write(id, counters));
    for (const group of batch.values()) {
      const counters: CounterCall[] = [];
      for (const [id, { units, ttlMs }] of group) {
        const cut = id.indexOf('\u0000');
        if (units !== 0) counters.push({ key: id.slice(0, cut), field: id.slice(cut + 1), units, ttlMs });
      }
      if (counters.length > 0) writes.push(write(settlementId(), counters));
    }
    await Promise.all(writes);
  };
  const flush = (): Promise<void> => {
    // One flush at a time: a slow store must not have two batches racing.
    flushing ??= flushNow().finally(() => (flushing = undefined));
    return flushing;
  };

  const timer = intervalMs > 0 ? setInterval(() => void flush(), intervalMs) : undefined;
  timer?.unref();

  const flushAll = async (): Promise<void> => {
    // A flush already running may have started before the caller's latest counters were added.
    if (flushing) await flushing;
    await flush();
  };

  return {
    add(counters, id) {
      if (counters.length === 0) return;
      if (id !== undefined) retries.set(id, counters);
      else if (intervalMs > 0) return merge(counters);
      if (intervalMs === 0) void write(id ?? settlementId(), counters);
    },
    record(keyId, windows, at, actual, cost, hour) {
      const group = hour ?? windows;
      let byKey = totals.get(group);
      if (!byKey) {
        byKey = new Map();
        totals.set(group, byKey);
      }
      let t = byKey.get(keyId);
      if (!t) {
        t = { keyId, windows, hour, at, requests: 0, input: 0, cached: 0, output: 0, cost: 0 };
        byKey.set(keyId, t);
      }
      t.at = at;
      t.requests++;
      t.input += actual.inputTokens;
      t.cached += actual.cachedTokens;
      t.output += actual.outputTokens;
      t.cost += cost;
      // Written at once only when asked to (tests).
      if (intervalMs === 0) void flushAll();
    },
    flush: flushAll,
    async close() {
      if (timer) clearInterval(timer);
      await flushAll();
    },
  };
}
