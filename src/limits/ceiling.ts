import { RequestTooLargeError } from '../errors/errors.js';
import { refusal, type PlannedBucket, type Reservation } from './limiter.js';
import type { AdmitOutcome, BucketCall, LimiterStore, ShareClaim, SharedCall, SharedOutcome, ShareSettings } from './store.js';

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
  /** On a shared ceiling: admitted beyond the entity's own share (borrowed); undefined: not shared. */
  readonly borrowed?: boolean | undefined;
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
  /**
   * `upstream`: the bucket identity; `owner`: the organisation named in a 429. With fair share on,
   * `claim` names whose share the request counts against; `maxWaitMs`: how long it may still wait when refused.
   */
  take(upstream: string, owner: string, model: string, figures: CeilingFigures, tokens: number, claim?: ShareClaim, maxWaitMs?: number): CeilingAnswer | Promise<CeilingAnswer>;
}

const WINDOW_MS = 60_000;

export interface CeilingsOptions {
  readonly store: LimiterStore;
  readonly keyPrefix: string;
  /** Fair share of every ceiling between the active keys (or groups); undefined: off. */
  readonly share?: ShareSettings | undefined;
}

/** limits.fair_share as the ceilings take it; undefined when off. */
export function shareSettings(config: { readonly limits: { readonly fair_share: { readonly enabled: boolean; readonly active_window_ms: number; readonly burst_ms: number } } }): ShareSettings | undefined {
  const { fair_share: fair } = config.limits;
  return fair.enabled ? { activeMs: fair.active_window_ms, burstMs: fair.burst_ms } : undefined;
}

export function createCeilings(options: CeilingsOptions): Ceilings {
  const { store, keyPrefix } = options;
  const share = store.admitShared && store.settleShared ? options.share : undefined;
  return {
    take(upstream, owner, model, figures, tokens, claim, maxWaitMs) {
      const scope = `${keyPrefix}{up|${upstream}|${model}}`;
      const buckets: PlannedBucket[] = [];
      if (figures.rpm !== null) buckets.push({ kind: 'rpm', key: `${scope}:rpm`, limit: figures.rpm, windowMs: WINDOW_MS, units: 1 });
      if (figures.tpm !== null) {
        if (tokens > figures.tpm) return { refused: new RequestTooLargeError(model, owner, figures.tpm, tokens, {}), waitMs: Infinity };
        buckets.push({ kind: 'tpm', key: `${scope}:tpm`, limit: figures.tpm, windowMs: WINDOW_MS, units: tokens });
      }
      if (buckets.length === 0) return UNLIMITED;
      if (share && claim) {
        const call: SharedCall = { buckets, stateKey: `${scope}:share`, claim, settings: share, maxWaitMs };
        const decideShared = (outcome: SharedOutcome): CeilingAnswer =>
          outcome.allowed ? sharedHold(store, call, outcome) : { refused: refusal(model, owner, buckets, outcome), waitMs: outcome.waitMs };
        const outcome = (store.admitShared as NonNullable<LimiterStore['admitShared']>)(call);
        return outcome instanceof Promise ? outcome.then(decideShared) : decideShared(outcome);
      }
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

/**
 * A hold on a shared ceiling: its settlement and release go through the fair-share script, which
 * corrects the entity's guarantee with the bucket; calibration takes from the bucket alone.
 */
function sharedHold(store: LimiterStore, call: SharedCall, outcome: SharedOutcome): CeilingHold {
  const plain = hold(store, call.buckets as readonly PlannedBucket[], outcome);
  let done = false;
  const send = (buckets: BucketCall[]): void => {
    if (buckets.length === 0) return;
    const settle = { ...call, buckets, maxWaitMs: 0 };
    const sent = outcome.settleSharedVia ? outcome.settleSharedVia(settle) : store.settleShared?.(settle);
    if (sent instanceof Promise) sent.catch(() => undefined);
  };
  const tpm = (call.buckets as readonly PlannedBucket[]).find((b) => b.kind === 'tpm');
  return {
    remainingRequests: plain.remainingRequests,
    remainingTokens: plain.remainingTokens,
    borrowed: outcome.borrowed,
    settle(usedTokens) {
      if (done) return;
      done = true;
      const delta = (tpm?.units ?? 0) - Math.max(0, Math.round(usedTokens));
      // The request itself stays taken: only the tokens are corrected (RPM's delta is 0).
      if (tpm && delta !== 0) send(call.buckets.map((b) => ({ ...b, units: b === tpm ? delta : 0 })));
    },
    release() {
      if (done) return;
      done = true;
      send(call.buckets.map((b) => ({ ...b })));
    },
    tighten: plain.tighten,
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
