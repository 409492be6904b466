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
  void reservation.settle(usage).catch(() => undefined);
}

const RELEASED: Usage = { inputTokens: 0, cachedTokens: 0, outputTokens: 0 };

export function settleReleased(reservation: Reservation): void {
  void reservation.settle(RELEASED).catch(() => undefined);
}

export function settleEstimated(reservation: Reservation, inputTokens: number, outputTokensRelayed: number): void {
  void reservation.settle({ inputTokens, cachedTokens: 0, outputTokens: outputTokensRelayed }).catch(() => undefined);
}
