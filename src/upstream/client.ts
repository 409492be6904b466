import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { UpstreamCall, type BodySource } from './call.js';
import type { ClientHead } from './headers.js';
import type { CeilingHold } from '../limits/ceiling.js';
import type { ShareClaim } from '../limits/store.js';

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
  /** Aborts the request when it fires (e.g. `AbortSignal.timeout`). */
  readonly signal?: AbortSignal | undefined;
  /** The prompt's prefix fingerprint: with several targets, the same one goes to the same target. */
  readonly affinity?: string | undefined;
  /** The catalogue model (pool routing and ceilings); undefined: the pool's default upstream. */
  readonly model?: string | undefined;
  /** Tokens the request may use (estimated input + output cap): what an upstream's ceiling takes. */
  readonly tokens?: number | undefined;
  /** How long the request may wait for an upstream's ceiling to have room (the key's max_wait_ms). */
  readonly maxWaitMs?: number | undefined;
  /** Whose share of a contended ceiling the request counts against (limits.fair_share). */
  readonly share?: ShareClaim | undefined;
}

export interface UpstreamResponse {
  readonly status: number;
  /** The upstream's headers as the client gets them (upstream/headers.ts: clientHead). */
  readonly head: ClientHead;
  readonly body: BodySource;
  /** The answering upstream's ceiling hold, settled with the answer's usage (pools only). */
  readonly ceiling?: CeilingHold | undefined;
}

/** Receives the means to cancel the request while it is open (the client went away). */
export interface Cancellable {
  abortUpstream: (() => void) | undefined;
  /** Written by a pool: the upstream that answered (or failed last) and the attempts made. */
  upstreamId?: string | undefined;
  upstreamAttempts?: number | undefined;
}

export interface Upstream {
  send(request: UpstreamRequest, cancellable?: Cancellable): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

/** An upstream whose requests in flight can be read (the balancer's load figure). */
export interface LoadedUpstream extends Upstream {
  load(): number;
}

export function createUpstream(options: UpstreamOptions): LoadedUpstream {
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
    send(request, cancellable) {
      return new Promise<UpstreamResponse>((resolve, reject) => {
        const call: UpstreamCall = new UpstreamCall(
          (answer) => resolve({ status: answer.status, head: answer.head, body: call }),
          reject,
        );
        // A bound method, not an arrow: an arrow here would share this scope's closure context,
        // and kept the whole request (its state, its exchange, the answer head) alive past its
        // end until a full collection: 1.2 KB promoted per request, 10x the bare forwarder's
        // (`bench/gc.ts`).
        if (cancellable) cancellable.abortUpstream = call.destroy.bind(call);
        const signal = request.signal;
        if (signal) {
          if (signal.aborted) call.destroy(signal.reason as Error);
          else signal.addEventListener('abort', () => call.destroy(signal.reason as Error), { once: true });
        }
        pool.dispatch({ method: request.method, path: basePath + request.path, headers: request.headers, body: request.body ?? null }, call);
      });
    },
    close: () => pool.close(),
    // Requests running, pending or queued on the pool: read only when several targets are balanced.
    load: () => pool.stats.size,
  };
}
