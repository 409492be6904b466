import { TollgateError } from './errors.js';

/**
 * Errors about how a request arrived (its nesting, its headers, its pace on the wire), kept apart
 * from errors.ts so that the transport's refusals read in one place. Same envelope, same rules.
 */

export class JsonTooDeepError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'json_too_deep';
  constructor(maxDepth: number) {
    super(`The JSON body is nested too deeply: at most ${maxDepth} levels of arrays and objects are accepted.`);
  }
}
