import type { Reservation } from '../limits/limiter.js';
import type { UsageShape } from '../usage/shape.js';
import type { Usage } from '../usage/extract.js';
import type { RequestState } from './request-state.js';
import type { UnitQuote } from '../usage/units.js';

/**
 * The settlement rules, in one place. They decide once what a request used: the limiter's
 * reservation is settled to it (the Reservation ignores later calls), and metrics and the log
 * line read the same figures from the request state (`usage`, `usageSource`).
 * - an answer with usage: input (cached included) + output, as reported;
 * - an upstream error status, no answer at all (unreachable, timeout), a request the upstream
 *   never saw (the client left during admission), or an endpoint that reports no usage: nothing;
 *   the tokens are released, the request itself still counts toward RPM/RPD, as at OpenAI;
 * - a client gone after the request went upstream, or an answer cut without usage: the input
 *   estimate + the output relayed so far, counted as `estimated`;
 * - a unit-priced request (images, speech, transcription, video) answered: the bill its answer
 *   states; an answer that states none, is cut, or a client gone after the request went
 *   upstream: the quote's reservation, counted as `estimated` (the upstream did the work).
 */
const RELEASED: Usage = { inputTokens: 0, cachedTokens: 0, outputTokens: 0 };

export function settleWithUsage(state: RequestState, reservation: Reservation | undefined, usage: Usage): void {
  state.usage = usage;
  state.usageSource = 'reported';
  if (reservation) settle(reservation, usage);
}

export function settleReleased(reservation: Reservation | undefined): void {
  if (reservation) settle(reservation, RELEASED);
}

export function settleEstimated(state: RequestState, reservation: Reservation | undefined, inputTokens: number, outputTokensRelayed: number): void {
  const usage: Usage = { inputTokens, cachedTokens: 0, outputTokens: outputTokensRelayed };
  if (inputTokens + outputTokensRelayed > 0) {
    state.usage = usage;
    state.usageSource = 'estimated';
  }
  if (reservation) settle(reservation, usage);
}

/** A unit-priced request that went upstream: the bill its answer states, or the reservation. */
export function settleUnits(state: RequestState, reservation: Reservation | undefined, quote: UnitQuote, stated: Usage | undefined): void {
  if (stated) return settleWithUsage(state, reservation, stated);
  state.usage = quote.reserved;
  state.usageSource = 'estimated';
  if (reservation) settle(reservation, quote.reserved);
}

/** An answer the upstream sent in full or in part (status < 400): which of the rules above applies. */
export function settleAnswer(
  state: RequestState,
  reservation: Reservation | undefined,
  shape: UsageShape | undefined,
  usage: Usage | undefined,
  inputTokens: number,
  outputTokensRelayed: number,
): void {
  if (!shape) settleReleased(reservation);
  else if (usage) settleWithUsage(state, reservation, usage);
  else settleEstimated(state, reservation, inputTokens, outputTokensRelayed);
}

/** A store failure while settling is the store's to count (resilient-store.ts); nothing waits on it. */
function settle(reservation: Reservation, usage: Usage): void {
  const pending = reservation.settle(usage);
  if (pending) pending.catch(() => undefined);
}
