import { ServiceUnavailableError, TollgateError } from './errors.js';

/**
 * Refusals of requests the gateway will not take as they came (their nesting, their headers,
 * their pace on the wire, their cost to inspect), kept apart from errors.ts so that these read in
 * one place. Same envelope, same rules.
 */

export class JsonTooDeepError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'json_too_deep';
  constructor(maxDepth: number) {
    super(`The JSON body is nested too deeply: at most ${maxDepth} levels of arrays and objects are accepted.`);
  }
}

/** The exact token count's queue is full (many near-window prompts at once): retry shortly. */
export class TokenizerBusyError extends ServiceUnavailableError {
  constructor() {
    super('Too many very long prompts are being counted right now. Please try again shortly.');
  }
}
