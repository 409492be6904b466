/**
 * The closed registry of errors tollgate itself answers with. Each class fixes its HTTP status and
 * OpenAI's `type`/`code`; `toBody` (the only serialiser) turns any of them into OpenAI's error
 * envelope. A 5xx never carries internals to the client.
 */

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export abstract class TollgateError extends Error {
  abstract readonly status: number;
  abstract readonly type: string;
  readonly code: string | null = null;
  readonly param: string | null = null;
  /** Extra response headers (e.g. retry-after). */
  readonly headers: Readonly<Record<string, string>> = {};
  /** The subclass's name (stack traces and logs say which error it was). */
  override name = this.constructor.name;

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export class MissingApiKeyError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  constructor() {
    super(
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). Your platform team issues tollgate keys.",
    );
  }
}

/** Show enough of a presented key to recognise it, never enough to use it. */
export function maskKey(presented: string): string {
  if (presented.length < 12) return '*'.repeat(Math.min(presented.length, 8));
  const head = presented.slice(0, Math.min(7, Math.floor(presented.length / 4)));
  return `${head}${'*'.repeat(Math.min(presented.length - head.length - 4, 32))}${presented.slice(-4)}`;
}

export class InvalidApiKeyError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_api_key';
  constructor(presented: string) {
    super(`Incorrect API key provided: ${maskKey(presented)}. Your platform team issues tollgate keys.`);
  }
}

/** A key whose secret is published (the demo key), presented from another machine than the gateway's. */
export class PublicKeyRemoteError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_api_key';
  constructor(presented: string) {
    super(
      `The API key ${maskKey(presented)} is the published demo key: it is accepted only from the gateway's own machine. Your platform team issues tollgate keys.`,
    );
  }
}

export class InvalidJsonError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  constructor() {
    super(
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
    );
  }
}

export class InvalidRequestError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly param: string | null;
  override readonly code: string | null;
  constructor(message: string, param: string | null = null, code: string | null = null) {
    super(message);
    this.param = param;
    this.code = code;
  }
}

export class BodyTooLargeError extends TollgateError {
  readonly status = 413;
  readonly type = 'invalid_request_error';
  override readonly code = 'request_too_large';
  constructor(limitBytes: number) {
    super(`Request body too large: the limit is ${limitBytes} bytes.`);
  }
}

export class InvalidUrlError extends TollgateError {
  readonly status = 404;
  readonly type = 'invalid_request_error';
  constructor(method: string, path: string) {
    super(`Invalid URL (${method} ${path})`);
  }
}

export class ModelNotFoundError extends TollgateError {
  readonly status = 404;
  readonly type = 'invalid_request_error';
  override readonly code = 'model_not_found';
  constructor(model: string) {
    super(`The model \`${model}\` does not exist or you do not have access to it.`);
  }
}

export class ContextLengthExceededError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'context_length_exceeded';
  override readonly param: string;
  constructor(contextWindow: number, tokens: number, param: string) {
    super(
      `This model's maximum context length is ${contextWindow} tokens. However, your ${param} resulted in ${tokens} tokens. Please reduce the length of the ${param}.`,
    );
    this.param = param;
  }
}

export class MaxOutputTooLargeError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_value';
  override readonly param: string;
  constructor(param: string, requested: number, max: number) {
    super(
      `${param} is too large: ${requested}. This model supports at most ${max} completion tokens, whereas you provided ${requested}.`,
    );
    this.param = param;
  }
}

export class UpstreamUnreachableError extends TollgateError {
  readonly status = 502;
  readonly type = 'server_error';
  override readonly code = 'upstream_unreachable';
  constructor() {
    super('The gateway could not reach the upstream API. Please try again.');
  }
}

/** An upstream stream that broke after it started (sent in-stream; the status is never on the wire). */
export class UpstreamInterruptedError extends TollgateError {
  readonly status = 502;
  readonly type = 'server_error';
  override readonly code = 'upstream_interrupted';
  constructor() {
    super('The connection to the upstream API broke off mid-stream. Please retry the request.');
  }
}

/** The upstream's answer was not what its endpoint returns (e.g. a model list that is not one). */
export class UpstreamInvalidAnswerError extends TollgateError {
  readonly status = 502;
  readonly type = 'server_error';
  override readonly code = 'upstream_invalid_answer';
  constructor() {
    super('The upstream API sent an answer the gateway could not read. Please try again.');
  }
}

export class UpstreamTimeoutError extends TollgateError {
  readonly status = 504;
  readonly type = 'server_error';
  override readonly code = 'upstream_timeout';
  constructor() {
    super('The upstream API did not answer in time. Please try again.');
  }
}

export class ServiceUnavailableError extends TollgateError {
  readonly status = 503;
  readonly type = 'server_error';
  override readonly code = 'service_unavailable';
}

/** The client went away before an answer: never sent, only logged (nginx's 499). */
export class ClientGoneError extends TollgateError {
  readonly status = 499;
  readonly type = 'client_closed_request';
  constructor() {
    super('The client closed the connection before the answer was ready.');
  }
}

export class InternalServerError extends TollgateError {
  readonly status = 500;
  readonly type = 'server_error';
  constructor() {
    super('The server had an error while processing your request. Sorry about that!');
  }
}

export type LimitKind = 'rpm' | 'rpd' | 'tpm';

const LIMIT_TEXT: Record<LimitKind, string> = {
  rpm: 'requests per min (RPM)',
  rpd: 'requests per day (RPD)',
  tpm: 'tokens per min (TPM)',
};

/**
 * OpenAI's rate-limit 429, word for word (clients parse "Please try again in …"), naming the key
 * where OpenAI names the organisation. Carries retry-after (seconds) and retry-after-ms, which the
 * openai SDK honours before retrying.
 */
export class RateLimitError extends TollgateError {
  readonly status = 429;
  readonly type: string;
  override readonly code = 'rate_limit_exceeded';
  override readonly headers: Readonly<Record<string, string>>;
  readonly kind: LimitKind;
  constructor(details: {
    kind: LimitKind;
    model: string;
    keyId: string;
    limit: number;
    used: number;
    requested: number;
    waitMs: number;
    tryAgain: string;
    headers: Readonly<Record<string, string>>;
  }) {
    super(
      `Rate limit reached for ${details.model === 'none' ? 'requests without a model' : details.model} in organization ${details.keyId} on ${LIMIT_TEXT[details.kind]}: Limit ${details.limit}, Used ${details.used}, Requested ${details.requested}. Please try again in ${details.tryAgain}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
    );
    this.kind = details.kind;
    this.type = details.kind === 'tpm' ? 'tokens' : 'requests';
    this.headers = {
      ...details.headers,
      'retry-after': String(Math.max(1, Math.ceil(details.waitMs / 1000))),
      'retry-after-ms': String(details.waitMs),
    };
  }
}

/** One request needs more tokens than the key's whole TPM bucket: retrying cannot help. */
export class RequestTooLargeError extends TollgateError {
  readonly status = 429;
  readonly type = 'tokens';
  override readonly code = 'rate_limit_exceeded';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(model: string, keyId: string, limit: number, requested: number, headers: Readonly<Record<string, string>>) {
    super(
      `Request too large for ${model} in organization ${keyId} on tokens per min (TPM): Limit ${limit}, Requested ${requested}. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.`,
    );
    this.headers = { ...headers, 'x-should-retry': 'false' };
  }
}

/** Too many requests with a missing or wrong key from one address. */
export class UnauthenticatedFloodError extends TollgateError {
  readonly status = 429;
  readonly type = 'requests';
  override readonly code = 'rate_limit_exceeded';
  override readonly headers: Readonly<Record<string, string>>;
  constructor(retryAfterMs: number) {
    super(
      `Too many requests with a missing or invalid API key from your address. Please try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))}s.`,
    );
    this.headers = { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))), 'retry-after-ms': String(retryAfterMs) };
  }
}

/** The in-stream error event sent when an upstream stream fails after it started. */
export function streamErrorEvent(error: TollgateError): string {
  return `data: ${JSON.stringify(error.toBody())}\n\n`;
}

/** A key that its platform team disabled (admin API or config `disabled: true`). */
export class KeyDisabledError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_api_key';
  constructor(presented: string) {
    super(`The API key ${maskKey(presented)} is disabled. Your platform team can enable it again.`);
  }
}

/** A key past its `expires_at`. */
export class KeyExpiredError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_api_key';
  constructor(presented: string, expiredAt: string) {
    super(`The API key ${maskKey(presented)} expired at ${expiredAt}. Your platform team issues tollgate keys.`);
  }
}

/**
 * A model outside the key's allow-list: 403 with OpenAI's wording for a project that may not use a
 * model (`Project … does not have access to model …`, code `model_not_found`), naming the key.
 */
export class ModelNotAllowedError extends TollgateError {
  readonly status = 403;
  readonly type = 'invalid_request_error';
  override readonly code = 'model_not_found';
  constructor(keyId: string, model: string) {
    super(`Project \`${keyId}\` does not have access to model \`${model}\``);
  }
}

/** A catalogue model past its `shutdown_date` with `on_shutdown: reject`: OpenAI's model_not_found, naming the successor. */
export class ModelRetiredError extends TollgateError {
  readonly status = 404;
  readonly type = 'invalid_request_error';
  override readonly code = 'model_not_found';
  constructor(model: string, shutdownDate: string, successor: string | undefined) {
    super(`The model \`${model}\` was shut down on ${shutdownDate}${successor === undefined ? '.' : `; use \`${successor}\` instead.`}`);
  }
}

export type QuotaKind = 'budget' | 'token_quota';

/**
 * A budget or token quota used up: OpenAI's `insufficient_quota` 429, with x-should-retry: false so
 * SDKs do not retry in vain. The message starts with OpenAI's sentence; the rest says which cap.
 */
export class QuotaExceededError extends TollgateError {
  readonly status = 429;
  readonly type = 'insufficient_quota';
  override readonly code = 'insufficient_quota';
  override readonly headers: Readonly<Record<string, string>> = { 'x-should-retry': 'false' };
  readonly kind: QuotaKind;
  constructor(kind: QuotaKind, detail: string) {
    super(`You exceeded your current quota, please check your plan and billing details. ${detail}`);
    this.kind = kind;
  }
}

/** Redis holds the admin-created keys and did not answer for a key this instance has not cached. */
export class KeyStoreUnavailableError extends ServiceUnavailableError {
  constructor() {
    super('The key store is unavailable. Please try again shortly.');
  }
}

/** Admin API: missing or wrong `Authorization: Bearer $TOLLGATE_ADMIN_TOKEN`. */
export class AdminUnauthorizedError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_admin_token';
  override readonly headers: Readonly<Record<string, string>> = { 'www-authenticate': 'Bearer realm="tollgate-admin"' };
  constructor(missing: boolean) {
    super(missing ? 'The admin API needs Authorization: Bearer <TOLLGATE_ADMIN_TOKEN>.' : 'Incorrect admin token provided.');
  }
}

export class KeyNotFoundError extends TollgateError {
  readonly status = 404;
  readonly type = 'invalid_request_error';
  override readonly code = 'key_not_found';
  override readonly param = 'id';
  constructor(id: string) {
    super(`No key with id \`${id}\`.`);
  }
}

/** Admin API: the change conflicts with the key's state (id taken, key from the config file, revoked). */
export class KeyConflictError extends TollgateError {
  readonly status = 409;
  readonly type = 'invalid_request_error';
  override readonly code: string;
  override readonly param: string | null;
  constructor(message: string, code: string, param: string | null = null) {
    super(message);
    this.code = code;
    this.param = param;
  }
}

/** A body whose media type the endpoint does not take (OpenAI's wording). Never forwarded unread. */
export class UnsupportedContentTypeError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'unsupported_content_type';
  constructor(given: string | undefined, accepted: readonly string[]) {
    const list = accepted.map((type) => `'${type}'`).join(' or ');
    super(
      given === undefined
        ? `Missing Content-Type header. This API method only accepts ${list} requests. Please try again with a supported content type.`
        : `Unsupported content type: '${given}'. This API method only accepts ${list} requests, but you specified the header 'Content-Type: ${given}'. Please try again with a supported content type.`,
    );
  }
}

/** OpenAI's wording for a parameter of the wrong JSON type. */
export class InvalidTypeError extends InvalidRequestError {
  constructor(param: string, expected: string, value: unknown) {
    super(`Invalid type for '${param}': expected ${expected}, but got ${jsonTypeName(value)} instead.`, param, 'invalid_type');
  }
}

function jsonTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'string') return 'a string';
  return 'an object';
}

export class MissingModelError extends InvalidRequestError {
  constructor(param: string) {
    super('you must provide a model parameter', param, null);
  }
}

/**
 * A key whose policy names models (allow-list) or dollars (budget) asked for something tollgate
 * cannot weigh against it: no model named where the upstream would pick one, or a model without
 * a price. Refused rather than forwarded unchecked.
 */
export class PolicyNeedsModelError extends TollgateError {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  override readonly code = 'model_required_by_key_policy';
  override readonly param: string;
  constructor(keyId: string, param: string, reason: 'unnamed' | 'unpriced', model?: string) {
    super(
      reason === 'unnamed'
        ? `Key \`${keyId}\` is limited to certain models or a budget: name the model in '${param}' so tollgate can apply the key's policy.`
        : `Key \`${keyId}\` has a budget, and model \`${model}\` has no price in tollgate's catalogue: the request cannot be budgeted. Ask your platform team to add the model's price.`,
    );
    this.param = param;
  }
}

/** The organisation's admin API is not served through the gateway. */
export class AdminOnlyEndpointError extends TollgateError {
  readonly status = 403;
  readonly type = 'invalid_request_error';
  override readonly code = 'admin_api_not_served';
  constructor(method: string, path: string) {
    super(
      `${method} ${path} belongs to OpenAI's organization admin API, which tollgate does not serve: the gateway's upstream credential is a project key, and a tollgate key is not an organization admin key. Call https://api.openai.com/v1 directly with an admin key.`,
    );
  }
}

/** An OpenAI endpoint whose use tollgate cannot meter under a key's policy. */
export class EndpointNotServedError extends TollgateError {
  readonly status = 403;
  readonly type = 'invalid_request_error';
  override readonly code = 'endpoint_not_served';
  constructor(method: string, path: string) {
    super(
      `${method} ${path} is not served through tollgate: it would start work (an OpenAI ephemeral secret, a WebRTC call) that tollgate cannot meter against your key's limits and budget. Use /v1/realtime over WebSocket and tollgate's own /v1/realtime/client_secrets.`,
    );
  }
}

/** A request body with content on a route that takes none (GET, DELETE, …). */
export class UnexpectedBodyError extends InvalidRequestError {
  constructor(method: string) {
    super(`${method} requests to this endpoint take no body.`, null, 'unexpected_body');
  }
}

/** Console: no session (never signed in, signed out, expired, or the key was rotated or revoked). */
export class ConsoleSessionRequiredError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'console_session_required';
  constructor() {
    super('Sign in to the console first (your session ended or never started).');
  }
}

/** Console: a key's session asked for what only the admin may see or do. */
export class ConsoleForbiddenError extends TollgateError {
  readonly status = 403;
  readonly type = 'invalid_request_error';
  override readonly code = 'console_admin_only';
  constructor() {
    super('This part of the console is for the admin; a key sees only itself.');
  }
}

/** Console: a mutating call without the session's CSRF token. */
export class ConsoleCsrfError extends TollgateError {
  readonly status = 403;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_csrf_token';
  constructor() {
    super('Missing or invalid CSRF token: reload the console and try again.');
  }
}
