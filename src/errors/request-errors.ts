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

/** A request body that made no progress for `server.body_idle_timeout_ms`: answered, then the connection closes. */
export class BodyIdleTimeoutError extends TollgateError {
  readonly status = 408;
  readonly type = 'invalid_request_error';
  override readonly code = 'request_timeout';
  constructor(idleMs: number) {
    super(`The request body stalled: no bytes arrived for ${idleMs} ms.`);
  }
}

/** The request's headers took longer than the server allows (Node's headersTimeout). */
export class HeadersTimeoutError extends TollgateError {
  readonly status = 408;
  readonly type = 'invalid_request_error';
  override readonly code = 'request_timeout';
  constructor() {
    super('The request headers did not arrive in time.');
  }
}

/** More headers than `server.max_request_headers`, or more header bytes than the HTTP parser takes. */
export class HeadersTooLargeError extends TollgateError {
  readonly status = 431;
  readonly type = 'invalid_request_error';
  override readonly code = 'request_header_fields_too_large';
  constructor(detail: string) {
    super(`Request header fields too large: ${detail}.`);
  }
}

/** What the HTTP parser could not read (control characters in headers, conflicting lengths, a malformed request line). */
export class MalformedHttpError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_http_request';
  constructor() {
    super('The HTTP request could not be parsed (malformed request line, header or body framing).');
  }
}
