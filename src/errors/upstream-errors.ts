import { errors as undiciErrors } from 'undici';
import { TollgateError, UpstreamTimeoutError, UpstreamUnreachableError } from './errors.js';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** Map a failure of the upstream call (undici or socket) onto 502 / 504; undefined if it is not one. */
export function mapUpstreamError(err: unknown): TollgateError | undefined {
  if (err instanceof TollgateError) return err;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new UpstreamTimeoutError();
  }
  if (err instanceof undiciErrors.ConnectTimeoutError) return new UpstreamTimeoutError();
  if (err instanceof undiciErrors.SocketError || err instanceof undiciErrors.ClientDestroyedError) {
    return new UpstreamUnreachableError();
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
      return new UpstreamTimeoutError();
    }
    if (CONNECT_CODES.has(code) || code.startsWith('UND_ERR_')) return new UpstreamUnreachableError();
  }
  return undefined;
}
