import { RequestTooLargeError } from '../errors/errors.js';
import { refusal, type PlannedBucket, type Reservation } from './limiter.js';
import type { AdmitOutcome, BucketCall, LimiterStore } from './store.js';

/**
 * The ceiling of one upstream: what its credential's organisation allows per model (RPM, TPM),
 * for the sum of every key routed there. One bucket set per upstream and model, taken atomically
 * in the store (Redis: exact across instances), settled to the real usage like a key's buckets.
 */

export interface CeilingFigures {
  readonly rpm: number | null;
  readonly tpm: number | null;
}

/** An admitted request's hold on one upstream's ceiling. */
export interface CeilingHold {
  /** What was left after this admission: requests and tokens (undefined: no such limit). */
  readonly remainingRequests: number | undefined;
  readonly remainingTokens: number | undefined;
  /** Correct the tokens to what was used (once; later calls and `release` are ignored). */
  settle(usedTokens: number): void;
  /** The upstream never received the request: the request and its tokens go back. */
  release(): void;
  /** The provider reports less headroom than counted: take this much more (never gives back). */
  tighten(requests: number, tokens: number): void;
}

export interface CeilingRefusal {
  readonly refused: Error;
  /** Until the ceiling has room; Infinity when it never will (larger than its TPM). */
  readonly waitMs: number;
}

export type CeilingAnswer = CeilingHold | CeilingRefusal;

export function isRefusal(answer: CeilingAnswer): answer is CeilingRefusal {
  return 'refused' in answer;
}

export interface Ceilings {
  /** `upstream`: the bucket identity; `owner`: the organisation named in a 429. */
  take(upstream: string, owner: string, model: string, figures: CeilingFigures, tokens: number): CeilingAnswer | Promise<CeilingAnswer>;
}

const WINDOW_MS = 60_000;

export function createCeilings(options: { readonly store: LimiterStore; readonly keyPrefix: string }): Ceilings {
  const { store, keyPrefix } = options;
  return {
    take(upstream, owner, model, figures, tokens) {
      const scope = `${keyPrefix}{up|${upstream}|${model}}`;
      const buckets: PlannedBucket[] = [];
      if (figures.rpm !== null) buckets.push({ kind: 'rpm', key: `${scope}:rpm`, limit: figures.rpm, windowMs: WINDOW_MS, units: 1 });
      if (figures.tpm !== null) {
        if (tokens > figures.tpm) return { refused: new RequestTooLargeError(model, owner, figures.tpm, tokens, {}), waitMs: Infinity };
        buckets.push({ kind: 'tpm', key: `${scope}:tpm`, limit: figures.tpm, windowMs: WINDOW_MS, units: tokens });
      }
      if (buckets.length === 0) return UNLIMITED;
      const decide = (outcome: AdmitOutcome): CeilingAnswer =>
        outcome.allowed ? hold(store, buckets, outcome) : { refused: refusal(model, owner, buckets, outcome), waitMs: outcome.waitMs };
      const outcome = store.admit(buckets);
      return outcome instanceof Promise ? outcome.then(decide) : decide(outcome);
    },
  };
}

const UNLIMITED: CeilingHold = {
  remainingRequests: undefined,
  remainingTokens: undefined,
  settle: () => undefined,
  release: () => undefined,
  tighten: () => undefined,
};

function hold(store: LimiterStore, buckets: readonly PlannedBucket[], outcome: AdmitOutcome): CeilingHold {
  let done = false;
  const send = (calls: readonly BucketCall[]): void => {
    if (calls.length === 0) return;
    // Nothing waits for a ceiling's correction: the store may send it with its next call.
    const sent = outcome.settleVia ? outcome.settleVia(calls) : store.settle(calls, undefined, true);
    if (sent instanceof Promise) sent.catch(() => undefined);
  };
  const remaining = (kind: string): number | undefined => {
    const index = buckets.findIndex((b) => b.kind === kind);
    return index === -1 ? undefined : Math.max(0, Math.floor((outcome.levels[index] ?? 0) / WINDOW_MS));
  };
  const tpm = buckets.find((b) => b.kind === 'tpm');
  const rpm = buckets.find((b) => b.kind === 'rpm');
  return {
    remainingRequests: remaining('rpm'),
    remainingTokens: remaining('tpm'),
    settle(usedTokens) {
      if (done) return;
      done = true;
      const delta = (tpm?.units ?? 0) - Math.max(0, Math.round(usedTokens));
      if (tpm && delta !== 0) send([{ ...tpm, units: delta }]);
    },
    release() {
      if (done) return;
      done = true;
      send(buckets.map((b) => ({ ...b })));
    },
    tighten(requests, tokens) {
      const calls: BucketCall[] = [];
      if (rpm && requests > 0) calls.push({ ...rpm, units: -requests });
      if (tpm && tokens > 0) calls.push({ ...tpm, units: -tokens });
      send(calls);
    },
  };
}

/** The key's reservation and the upstream ceiling's hold, settled together by the answer side. */
export function withCeiling(reservation: Reservation | undefined, ceiling: CeilingHold | undefined): Reservation | undefined {
  if (!ceiling || ceiling === UNLIMITED) return reservation;
  return {
    headers: reservation?.headers ?? {},
    reservedTokens: reservation?.reservedTokens ?? 0,
    settle(actual) {
      ceiling.settle(actual.inputTokens + actual.outputTokens);
      return reservation?.settle(actual);
    },
  };
}
