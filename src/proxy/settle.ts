import type { Reservation } from '../limits/limiter.js';
import type { Usage } from '../usage/extract.js';

/**
 * The settlement rules, in one place. Each request's reservation is settled exactly once (the
 * Reservation ignores later calls) with the tokens that really counted:
 * - an answer with usage: input (cached included) + output, as reported;
 * - an upstream error status, or no answer at all (unreachable, timeout): the tokens are released,
 *   the request itself still counts toward RPM/RPD, as at OpenAI;
 * - a client gone, or a stream cut without usage: the input estimate + the output relayed so far.
 */
export function settleWithUsage(reservation: Reservation, usage: Usage): void {
  settle(reservation, usage.inputTokens + usage.outputTokens);
}

export function settleReleased(reservation: Reservation): void {
  settle(reservation, 0);
}

export function settleEstimated(reservation: Reservation, inputTokens: number, outputTokensRelayed: number): void {
  settle(reservation, inputTokens + outputTokensRelayed);
}

/** A store failure while settling is the store's to count (resilient-store.ts); nothing waits on it. */
function settle(reservation: Reservation, tokens: number): void {
  const pending = reservation.settle(tokens);
  if (pending) pending.catch(() => undefined);
}
