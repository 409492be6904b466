import type { CeilingHold } from '../limits/ceiling.js';
import type { ClientHead } from './headers.js';

/** What the pool reports, for metrics (src/metrics/upstream-metrics.ts); no prom-client here. */
export interface PoolObserver {
  /** One attempt and how it ended: ok, an error status (e.g. 503), connect_error, error. */
  attempted(upstream: string, outcome: string, seconds: number): void;
  /** Another attempt on the same upstream, after a backoff. */
  retried(upstream: string): void;
  /** Another attempt on another upstream. */
  failedOver(from: string, to: string): void;
  /** An upstream's ceiling had no room for a request. */
  ceilingRefused(upstream: string): void;
  ejected(upstream: string): void;
  healthChanged(upstream: string, healthy: boolean): void;
  /** What the ceiling had left after an admission, by `requests` / `tokens`. */
  ceilingRemaining(upstream: string, model: string, kind: 'requests' | 'tokens', remaining: number): void;
  /** An admission on a shared ceiling (limits.fair_share): its entity, tokens, and whether beyond its own share. */
  shareAdmitted?(upstream: string, entity: string, tokens: number, borrowed: boolean): void;
  /** Tollgate's count minus the provider's (positive: the provider has less left than counted). */
  drift(upstream: string, model: string, kind: 'requests' | 'tokens', drift: number): void;
}

function count(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/**
 * Calibration from the provider's own x-ratelimit-remaining-* headers: when the provider says
 * less is left than tollgate counted (others use the organisation outside tollgate), the ceiling
 * takes the difference, and so refills to the configured figure no sooner than the provider's
 * own bucket would. It never gives back: nothing loosens past the configured ceiling.
 */
export function calibrate(upstream: string, model: string, hold: CeilingHold, head: ClientHead, observer: PoolObserver | undefined): void {
  const requests = compare(hold.remainingRequests, count(head.remainingRequests));
  const tokens = compare(hold.remainingTokens, count(head.remainingTokens));
  if (hold.remainingRequests !== undefined) observer?.ceilingRemaining(upstream, model, 'requests', hold.remainingRequests);
  if (hold.remainingTokens !== undefined) observer?.ceilingRemaining(upstream, model, 'tokens', hold.remainingTokens);
  if (requests !== undefined) observer?.drift(upstream, model, 'requests', requests);
  if (tokens !== undefined) observer?.drift(upstream, model, 'tokens', tokens);
  if ((requests ?? 0) > 0 || (tokens ?? 0) > 0) hold.tighten(Math.max(0, requests ?? 0), Math.max(0, tokens ?? 0));
}

function compare(ours: number | undefined, theirs: number | undefined): number | undefined {
  return ours === undefined || theirs === undefined ? undefined : ours - theirs;
}
