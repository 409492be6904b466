import { errors as undiciErrors } from 'undici';
import type { Readable } from 'node:stream';
import type { ClientHead } from './headers.js';

/** When an attempt may be repeated, and how long to wait before repeating it on the same upstream. */

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly deadlineMs: number;
  readonly baseBackoffMs: number;
  readonly maxBackoffMs: number;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
/** Failures before any byte was written: the upstream cannot have received the request. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
/** Creating calls that are not safe to repeat once received: a second file, batch or job. */
const CREATES = /^\/(files|uploads|batches|fine_tuning\/jobs)(\/[^/?]+\/(parts|complete))?(\?|$)/;

export function neverReceived(err: unknown): boolean {
  if (err instanceof undiciErrors.ConnectTimeoutError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NOT_SENT_CODES.has(code);
}

/** Connect errors, resets and timeouts before the answer's head. */
export function retryableError(err: unknown): boolean {
  if (neverReceived(err)) return true;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.SocketError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_SOCKET';
}

export function isCreate(method: string, path: string): boolean {
  return method === 'POST' && CREATES.test(path);
}

/** The body can be sent again: bytes always; a stream only when none of it was read. */
export function replayable(body: Buffer | Readable | undefined): boolean {
  if (body === undefined || Buffer.isBuffer(body)) return true;
  return !body.readableDidRead && !body.destroyed;
}

function header(head: ClientHead, name: string): string | undefined {
  const list = head.headers;
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

/** An answer worth another attempt: 429 and 500/502/503/504, unless the upstream says x-should-retry: false. */
export function retryableStatus(status: number, head: ClientHead): boolean {
  if (status < 400) return false;
  const should = header(head, 'x-should-retry');
  if (should === 'false') return false;
  return should === 'true' || RETRYABLE_STATUS.has(status);
}

/** The upstream's own wait (retry-after-ms, else retry-after in seconds), if it names one. */
export function retryAfterMs(head: ClientHead): number | undefined {
  const ms = Number(header(head, 'retry-after-ms'));
  if (Number.isFinite(ms) && ms >= 0 && header(head, 'retry-after-ms') !== undefined) return ms;
  const seconds = header(head, 'retry-after');
  if (seconds === undefined) return undefined;
  const n = Number(seconds);
  if (Number.isFinite(n) && n >= 0) return n * 1000;
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Full jitter: random(0, min(max, base × 2^(retry − 1))), unless the upstream named its wait. */
export function backoffMs(policy: RetryPolicy, retry: number, named: number | undefined, random: () => number): number {
  if (named !== undefined) return named;
  return Math.floor(random() * Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** Math.max(0, retry - 1)));
}
