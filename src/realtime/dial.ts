import type { IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';
import { InternalServerError, TollgateError, UpstreamTimeoutError, UpstreamUnreachableError } from '../errors/errors.js';
import type { UpstreamIdentity } from '../upstream/headers.js';

/** The upstream's own HTTP answer to the upgrade (an OpenAI error), passed on to the client as is. */
export class UpstreamRefusedUpgrade extends TollgateError {
  readonly status: number;
  readonly type = 'upstream_error';
  constructor(
    status: number,
    readonly body: string,
    readonly contentType: string | undefined,
  ) {
    super(`upstream answered the upgrade with ${status}`);
    this.status = status;
  }
}

export interface DialOptions {
  /** `https://api.openai.com/v1` and the like. */
  readonly baseUrl: string;
  /** The client's query string (`?model=…`), passed through. */
  readonly search: string;
  readonly clientHeaders: IncomingHttpHeaders;
  readonly identity: UpstreamIdentity;
  readonly timeoutMs: number;
  readonly maxPayload: number;
  /** Fires when the client went away while dialling: the attempt is abandoned. */
  readonly signal: AbortSignal;
}

/** The upstream's realtime URL: the base's scheme as ws(s), its path + `/realtime`, the client's query. */
export function realtimeUrl(baseUrl: string, search: string): string {
  const url = new URL(baseUrl.replace(/\/+$/, '') + '/realtime');
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  url.search = search;
  return url.toString();
}

/**
 * Open the upstream WebSocket with the gateway's credential. Resolves when it is open, paused
 * (the caller resumes it once it listens); rejects
 * with an OpenAI-shaped error (the upstream's own answer, 502 unreachable, 504 no answer).
 */
export function dialUpstream(options: DialOptions): Promise<WebSocket> {
  const headers: Record<string, string> = {};
  if (options.identity.apiKey) headers.authorization = `Bearer ${options.identity.apiKey}`;
  if (options.identity.organization) headers['openai-organization'] = options.identity.organization;
  if (options.identity.project) headers['openai-project'] = options.identity.project;
  const beta = options.clientHeaders['openai-beta'];
  if (typeof beta === 'string') headers['openai-beta'] = beta;
  const ws = new WebSocket(realtimeUrl(options.baseUrl, options.search), { headers, handshakeTimeout: options.timeoutMs, maxPayload: options.maxPayload, perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (error: TollgateError): void => {
      if (failed) return;
      failed = true;
      options.signal.removeEventListener('abort', abort);
      ws.removeAllListeners('open');
      ws.on('error', () => undefined);
      ws.terminate();
      reject(error);
    };
    const abort = (): void => fail(new UpstreamUnreachableError());
    options.signal.addEventListener('abort', abort, { once: true });
    ws.once('open', () => {
      options.signal.removeEventListener('abort', abort);
      // Events the upstream sent with its 101 (session.created) would be emitted before the session
      // listens: held until it resumes the socket.
      ws.pause();
      resolve(ws);
    });
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () => fail(new UpstreamRefusedUpgrade(response.statusCode ?? 502, Buffer.concat(chunks).toString('utf8'), response.headers['content-type'])));
      response.once('error', () => fail(new UpstreamUnreachableError()));
    });
    ws.once('error', (err: Error) => {
      if (/handshake has timed out/i.test(err.message)) fail(new UpstreamTimeoutError());
      else if (/Unexpected server response/i.test(err.message)) return;
      else fail(err instanceof TollgateError ? err : isNetworkError(err) ? new UpstreamUnreachableError() : new InternalServerError());
    });
  });
}

function isNetworkError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' || /socket|connect|closed/i.test(err.message);
}
