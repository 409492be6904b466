import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';

/**
 * The upstream API behind one undici Pool. Knows nothing of Fastify: it maps a client path onto
 * the upstream base URL and sends bytes or a stream, returning status, headers and a body stream.
 */

export interface UpstreamOptions {
  /** Base URL including its path prefix, e.g. https://api.openai.com/v1 */
  readonly baseUrl: string;
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
}

export interface UpstreamRequest {
  readonly method: Dispatcher.HttpMethod;
  /** The client's path after `/v1`, with its query string (e.g. `/chat/completions?x=1`). */
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | Readable | undefined;
  /** Emits `abort` (or is an AbortSignal) when the client has gone. */
  readonly signal: AbortSignal | EventEmitter;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable;
}

export interface Upstream {
  send(request: UpstreamRequest): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

export function createUpstream(options: UpstreamOptions): Upstream {
  const base = new URL(options.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const pool = new Pool(base.origin, {
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: { timeout: options.connectTimeoutMs },
    headersTimeout: options.headersTimeoutMs,
    bodyTimeout: options.bodyTimeoutMs,
  });
  return {
    async send(request) {
      const response = await pool.request({
        method: request.method,
        path: basePath + request.path,
        headers: request.headers,
        body: request.body ?? null,
        signal: request.signal,
      });
      return { status: response.statusCode, headers: response.headers, body: response.body };
    },
    close: () => pool.close(),
  };
}
