import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TollgateError } from '../errors/errors.js';
import {
  BodyIdleTimeoutError,
  HeadersTimeoutError,
  HeadersTooLargeError,
  MalformedHttpError,
} from '../errors/request-errors.js';

/**
 * What the HTTP layer refuses before a route runs, answered in OpenAI's envelope like every other
 * error: requests Node's parser cannot read (fastify's `clientErrorHandler`), request bodies that
 * stall, and requests with too many headers.
 */

/** The answer to a parse error, or undefined when there is nobody to answer (the peer is gone). */
function parseErrorAnswer(err: Error & { code?: string }): TollgateError | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return new HeadersTooLargeError('the request headers exceed the size the server accepts');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HeadersTimeoutError();
    default:
      return new MalformedHttpError();
  }
}

/** Node's private pointer from a socket to the response being written on it. */
function responseOn(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
}

/**
 * fastify's `clientErrorHandler`: Node could not parse a request (control characters in a header,
 * both Content-Length and Transfer-Encoding, headers over the size limit, a malformed request
 * line). There is no request object, so the answer is written to the socket, then it closes.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  const error = parseErrorAnswer(err);
  // An answer already under way on this socket cannot be followed by another one.
  const started = responseOn(socket)?.headersSent === true;
  if (error && socket.writable && !started) {
    const body = JSON.stringify(error.toBody());
    socket.end(
      `HTTP/1.1 ${error.status} ${statusText(error.status)}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroySoon();
}

function statusText(status: number): string {
  return status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
}

/**
 * Times a request body while it arrives: no byte for `idleMs` → 408 and the connection closes.
 * The timer is the socket's own inactivity timer (re-armed by Node on every read, no per-chunk
 * work), disarmed as soon as the body has ended, so answers and streams are never timed.
 */
export function watchBodyIdle(request: IncomingMessage, response: ServerResponse, idleMs: number, send: (error: TollgateError) => void): void {
  // A request without a body (or already read) has nothing to wait for.
  if (idleMs <= 0 || request.complete) return;
  const socket = request.socket;
  request.setTimeout(idleMs, () => {
    if (!response.headersSent) {
      response.setHeader('connection', 'close');
      send(new BodyIdleTimeoutError(idleMs));
      response.once('finish', () => socket.destroy());
    } else {
      socket.destroy();
    }
  });
  // Node destroys a socket whose timer fires with no listener: the timer must go with the body.
  request.once('end', () => socket.setTimeout(0));
}

/** 431 for a request with more headers than `max` (each header counted once per line). */
export function tooManyHeaders(request: IncomingMessage, max: number): TollgateError | undefined {
  const count = request.rawHeaders.length / 2;
  return count > max ? new HeadersTooLargeError(`${count} headers, at most ${max} are accepted`) : undefined;
}
