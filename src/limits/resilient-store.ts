import { ServiceUnavailableError } from '../errors/errors.js';
import { mayHaveRun } from './redis-store.js';
import { UnsettledError, type AdmitOutcome, type BucketCall, type CounterCall, type LimiterStore, type SharedCall, type SharedOutcome } from './store.js';

/**
 * Redis with an explicit failure policy. Every Redis call is bounded by the client's command
 * timeout; on an error the store either refuses (fail_closed: OpenAI-shaped 503) or limits in
 * process memory with every limit divided by the number of instances (fail_open). After a
 * failure Redis is left alone for `probeAfterMs`, then tried again: recovery is automatic.
 */
export interface ResilientOptions {
  readonly primary: LimiterStore;
  readonly fallback: LimiterStore;
  readonly mode: 'fail_closed' | 'fail_open';
  readonly instances: number;
  readonly probeAfterMs?: number;
  /** Called when the store switches to or from the fallback (log and count it). */
  readonly onSwitch: (event: { degraded: boolean; error?: unknown }) => void;
  /** Called for every failed Redis call. */
  readonly onError: (error: unknown) => void;
  /**
   * Counter units (usage and spend) that could not reach Redis: a settlement that failed, or what a
   * fail-open admission counted locally. The caller keeps them and writes them when Redis is back,
   * with `id` when there is one (a settlement that may have run: the id makes writing it again safe).
   */
  readonly onUnwrittenCounters?: (counters: readonly CounterCall[], id?: string) => void;
}

export class LimiterUnavailableError extends ServiceUnavailableError {
  constructor() {
    super('The rate limiter is unavailable. Please try again shortly.');
  }
}

export function createResilientStore(options: ResilientOptions): LimiterStore {
  const { primary, fallback, mode, instances } = options;
  const probeAfterMs = options.probeAfterMs ?? 1000;
  let degradedUntil = 0;
  let degraded = false;

  const local = (calls: readonly BucketCall[]): BucketCall[] =>
    calls.map((call) => ({ ...call, key: `local:${call.key}`, limit: Math.max(1, Math.floor(call.limit / instances)) }));
  // The last value Redis reported for each capped counter: fail-open shares out what was left of
  // the cap then, divided by the number of instances, and counts locally from zero.
  const lastSeen = new Map<string, number>();
  const localCounters = (counters: readonly CounterCall[]): CounterCall[] =>
    counters.map((c) => {
      const cap = c.cap === undefined ? undefined : Math.max(0, Math.floor((c.cap - (lastSeen.get(`${c.key}\u0000${c.field}`) ?? 0)) / instances));
      return { ...c, key: `local:${c.key}`, cap };
    });
  const remember = (counters: readonly CounterCall[], values: readonly number[] | undefined): void => {
    if (!values) return;
    if (lastSeen.size > 100_000) lastSeen.clear();
    counters.forEach((c, j) => {
      if (c.cap !== undefined) lastSeen.set(`${c.key}\u0000${c.field}`, values[j] ?? 0);
    });
  };
  const unwritten = (counters: readonly CounterCall[]): void => {
    if (counters.length > 0) options.onUnwrittenCounters?.(counters);
  };

  const failed = (error: unknown): void => {
    options.onError(error);
    degradedUntil = Date.now() + probeAfterMs;
    if (!degraded) {
      degraded = true;
      options.onSwitch({ degraded: true, error });
    }
  };
  const recovered = (): void => {
    if (degraded) {
      degraded = false;
      options.onSwitch({ degraded: false });
    }
  };

  const viaFallback = async (calls: readonly BucketCall[], counters: readonly CounterCall[], error?: unknown): Promise<AdmitOutcome> => {
    if (mode === 'fail_closed') throw new LimiterUnavailableError();
    const localCalls = local(calls);
    const outcome = await fallback.admit(localCalls, localCounters(counters));
    // A timed-out admission may still run in Redis with its counters: they are not written twice.
    if (outcome.allowed && !mayHaveRun(error)) unwritten(counters);
    return {
      ...outcome,
      limits: localCalls.map((call) => call.limit),
      settleVia: async (settle, settleCounters = []) => {
        unwritten(settleCounters);
        await fallback.settle(local(settle), localCounters(settleCounters));
      },
    };
  };

  const localShared = (call: SharedCall): SharedCall => ({ ...call, buckets: local(call.buckets), stateKey: `local:${call.stateKey}` });
  /** A shared ceiling in process memory: this instance's part of it, fair among its own entities. */
  const sharedViaFallback = async (call: SharedCall): Promise<SharedOutcome> => {
    if (mode === 'fail_closed' || !fallback.admitShared) throw new LimiterUnavailableError();
    const localCall = localShared(call);
    const outcome = await fallback.admitShared(localCall);
    return {
      ...outcome,
      limits: localCall.buckets.map((b) => b.limit),
      settleSharedVia: (settle) => {
        fallback.settleShared?.(localShared(settle));
      },
    };
  };

  return {
    // Promise chains rather than async functions: one promise per call on the hot path, not two.
    admit(calls, counters = []) {
      if (Date.now() < degradedUntil) return viaFallback(calls, counters);
      let answer: Promise<AdmitOutcome>;
      try {
        answer = Promise.resolve(primary.admit(calls, counters));
      } catch (error) {
        answer = Promise.reject(error);
      }
      return answer.then(
        (outcome) => {
          recovered();
          remember(counters, outcome.values);
          return outcome;
        },
        (error: unknown) => {
          failed(error);
          return viaFallback(calls, counters, error);
        },
      );
    },
    settle(calls, counters = [], deferrable, id) {
      let answer: Promise<readonly number[]>;
      try {
        answer = Promise.resolve(primary.settle(calls, counters, deferrable, id));
      } catch (error) {
        answer = Promise.reject(error);
      }
      return answer.then(undefined, (error: unknown) => {
        // A settlement Redis cannot take now is lost to the shared bucket; the local one keeps it.
        // Counters (spend, usage) are handed back to be written when Redis is back: with the
        // call's settlement id when it may have run (Redis then applies them once), as they are
        // when the call never left.
        if (error instanceof UnsettledError) {
          failed(error.reason);
          if (error.counters.length > 0) options.onUnwrittenCounters?.(error.counters, error.id);
        } else {
          failed(error);
          if (!mayHaveRun(error)) unwritten(counters);
        }
        return fallback.settle(local(calls));
      });
    },
    ...(primary.admitShared && {
      admitShared(call: SharedCall): Promise<SharedOutcome> {
        if (Date.now() < degradedUntil) return sharedViaFallback(call);
        return Promise.resolve()
          .then(() => (primary.admitShared as (c: SharedCall) => SharedOutcome | Promise<SharedOutcome>)(call))
          .then(
            (outcome) => {
              recovered();
              return outcome;
            },
            (error: unknown) => {
              failed(error);
              return sharedViaFallback(call);
            },
          );
      },
    }),
    ...(primary.settleShared && {
      settleShared(call: SharedCall): Promise<readonly number[]> {
        return Promise.resolve()
          .then(() => (primary.settleShared as (c: SharedCall) => readonly number[] | Promise<readonly number[]>)(call))
          .then(undefined, (error: unknown) => {
            failed(error);
            return fallback.settleShared?.(localShared(call)) ?? [];
          });
      },
    }),
    read: (keys) => primary.read(keys),
    async close() {
      await Promise.all([primary.close(), fallback.close()]);
    },
  };
}
