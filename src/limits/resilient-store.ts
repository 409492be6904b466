import { ServiceUnavailableError } from '../errors/errors.js';
import type { AdmitOutcome, BucketCall, LimiterStore } from './store.js';

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

  const viaFallback = async (calls: readonly BucketCall[]): Promise<AdmitOutcome> => {
    if (mode === 'fail_closed') throw new LimiterUnavailableError();
    const localCalls = local(calls);
    const outcome = await fallback.admit(localCalls);
    return {
      ...outcome,
      limits: localCalls.map((call) => call.limit),
      settleVia: async (settle) => {
        await fallback.settle(local(settle));
      },
    };
  };

  return {
    async admit(calls) {
      if (Date.now() < degradedUntil) return viaFallback(calls);
      try {
        const outcome = await primary.admit(calls);
        recovered();
        return outcome;
      } catch (error) {
        failed(error);
        return viaFallback(calls);
      }
    },
    async settle(calls) {
      try {
        return await primary.settle(calls);
      } catch (error) {
        // A settlement Redis cannot take now is lost to the shared bucket; the local one keeps it.
        failed(error);
        return fallback.settle(local(calls));
      }
    },
    async close() {
      await fallback.close();
    },
  };
}
