import type { CounterCall, LimiterStore } from '../limits/store.js';

/**
 * Usage of keys without budgets or token quotas: counted in process and written to the store in one
 * batch per key every `intervalMs` (so those keys pay no store call per request), and on close. A
 * batch the store refuses is kept and tried again with the next one. Counters a failed settlement
 * handed back (Redis down) come here too.
 */
export interface UsageRecorder {
  add(counters: readonly CounterCall[]): void;
  /** Write everything counted so far (reports call it first, so they include this instance's latest). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface RecorderOptions {
  readonly store: LimiterStore;
  /** 0: write at once (the in-memory store: nothing to batch). */
  readonly intervalMs: number;
  readonly onError?: (error: unknown) => void;
}

interface Pending {
  units: number;
  ttlMs: number | undefined;
}

/** The hash tag of a storage key: counters of one tag go to the store in one call. */
function tagOf(key: string): string {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open === -1 || close === -1 ? key : key.slice(open, close + 1);
}

export function createUsageRecorder(options: RecorderOptions): UsageRecorder {
  const { store, intervalMs } = options;
  /** tag → "key\0field" → pending units */
  let pending = new Map<string, Map<string, Pending>>();

  const merge = (counters: readonly CounterCall[]): void => {
    for (const counter of counters) {
      const tag = tagOf(counter.key);
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

  let flushing: Promise<void> | undefined;
  const flushNow = async (): Promise<void> => {
    const batch = pending;
    pending = new Map();
    await Promise.all(
      [...batch.values()].map(async (group) => {
        const counters: CounterCall[] = [];
        for (const [id, { units, ttlMs }] of group) {
          const cut = id.indexOf('\u0000');
          if (units !== 0) counters.push({ key: id.slice(0, cut), field: id.slice(cut + 1), units, ttlMs });
        }
        if (counters.length === 0) return;
        try {
          await store.settle([], counters);
        } catch (error) {
          options.onError?.(error);
          merge(counters);
        }
      }),
    );
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
    add(counters) {
      if (counters.length === 0) return;
      if (intervalMs > 0) return merge(counters);
      void store.settle([], counters).catch((error: unknown) => {
        options.onError?.(error);
        merge(counters);
      });
    },
    flush: flushAll,
    async close() {
      if (timer) clearInterval(timer);
      await flushAll();
    },
  };
}
