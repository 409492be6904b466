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
 * What a provider's 429 body says of the limit it hit: which one (`requests` or `tokens`) and what
 * the provider had left of it. OpenAI names it in `error.type` and its message ("… on tokens per
 * min (TPM): Limit L, Used U, Requested R …": L − U left; a per-day limit or no figures: nothing
 * left); Azure OpenAI only in its message ("… exceeded token rate limit …", "… call rate limit …").
 * A single request larger than the limit, or an exhausted quota, says nothing of the headroom.
 */
export interface NamedLimit {
  readonly kind: 'requests' | 'tokens';
  /** The provider's remaining headroom of that limit, per minute. */
  readonly remaining: number;
}

const FIGURES = /\bon (requests|tokens) per (min|day)\b[^:]*: Limit (\d+), Used (\d+), Requested (\d+)/;

export function limitFrom429(body: Buffer): NamedLimit | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  const error = (parsed as { error?: unknown } | null)?.error;
  if (error === null || typeof error !== 'object') return undefined;
  const { type, message } = error as { type?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (text.startsWith('Request too large')) return undefined;
  let kind: NamedLimit['kind'] | undefined;
  if (typeof type === 'string' && /^(requests|tokens)\b/.test(type)) kind = type.startsWith('tokens') ? 'tokens' : 'requests';
  else if (/\btoken rate limit\b/i.test(text)) kind = 'tokens';
  else if (/\b(call|request) rate limit\b/i.test(text)) kind = 'requests';
  if (kind === undefined) return undefined;
  const figures = FIGURES.exec(text);
  if (!figures || figures[1] !== kind || figures[2] === 'day') return { kind, remaining: 0 };
  return { kind, remaining: Math.max(0, Number(figures[3]) - Number(figures[4])) };
}

/**
 * Calibration from the provider's own x-ratelimit-remaining-* headers and, on a 429, from its
 * body naming the limit hit (the tighter of the two counts): when the provider says less is left
 * than tollgate counted (others use the organisation outside tollgate), the ceiling takes the
 * difference, and so refills to the configured figure no sooner than the provider's own bucket
 * would. It never gives back: nothing loosens past the configured ceiling. `reservedTokens`: what
 * this request holds of the ceiling's tokens, back in it once a 429 is settled (the provider's
 * figures exclude it).
 */
export function calibrate(upstream: string, model: string, hold: CeilingHold, head: ClientHead, observer: PoolObserver | undefined, named?: NamedLimit, reservedTokens = 0): void {
  let requests = compare(hold.remainingRequests, count(head.remainingRequests));
  let tokens = compare(hold.remainingTokens, count(head.remainingTokens));
  // The 429's own word on the limit it hit, where it is the tighter of the two.
  if (named?.kind === 'requests' && hold.remainingRequests !== undefined) requests = Math.max(requests ?? -Infinity, hold.remainingRequests - named.remaining);
  if (named?.kind === 'tokens' && hold.remainingTokens !== undefined) tokens = Math.max(tokens ?? -Infinity, hold.remainingTokens + reservedTokens - named.remaining);
  if (hold.remainingRequests !== undefined) observer?.ceilingRemaining(upstream, model, 'requests', hold.remainingRequests);
  if (hold.remainingTokens !== undefined) observer?.ceilingRemaining(upstream, model, 'tokens', hold.remainingTokens);
  if (requests !== undefined) observer?.drift(upstream, model, 'requests', requests);
  if (tokens !== undefined) observer?.drift(upstream, model, 'tokens', tokens);
  if ((requests ?? 0) > 0 || (tokens ?? 0) > 0) hold.tighten(Math.max(0, requests ?? 0), Math.max(0, tokens ?? 0));
}

function compare(ours: number | undefined, theirs: number | undefined): number | undefined {
  return ours === undefined || theirs === undefined ? undefined : ours - theirs;
}
