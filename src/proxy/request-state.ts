import { performance } from 'node:perf_hooks';
import type { Caller } from '../auth/keys.js';
import type { ModelRetirement } from '../config/catalogue.js';
import type { UsageSource } from '../metrics/usage-metrics.js';
import type { Usage } from '../usage/extract.js';

/**
 * What one request learned on its way through, for the log line and metrics. Each stage writes
 * its own fields; it is a typed record, not a string-keyed bag.
 */
export interface RequestState {
  caller: Caller | undefined;
  /**
   * Route template, e.g. /v1/chat/completions, set by the /v1 forwarder (reading Fastify's
   * routeOptions costs an object per request); other routes are named when they are logged.
   */
  endpoint: string | undefined;
  /** The model as the client named it (logs only: unbounded). */
  model: string | undefined;
  /** Bounded metric label: the catalogue name, `other` for an unknown model, `none` without one. */
  modelLabel: string;
  stream: boolean;
  /** Response cache outcome, a bounded metric label: `none` (no cache for this key or endpoint), `hit`, `miss`, `bypass`. */
  cache: string;
  /** A cache hit: what the stored answer cost when it was made (nano-dollars), i.e. what the hit saved. */
  cacheSavedNano: number | undefined;
  /** The `prompt_cache_key` tollgate set (prefix steering), for the log line. */
  steeredKey: string | undefined;
  /** When the request arrived (performance.now()): the origin of time to first token. */
  readonly arrivedAt: number;
  /** When the upstream request was sent / its body ended (performance.now()). */
  upstreamStart: number | undefined;
  upstreamEnd: number | undefined;
  /** When the first byte of the upstream's body arrived (performance.now()). */
  upstreamFirstByte: number | undefined;
  upstreamStatus: number | undefined;
  /**
   * What the request used, decided once by settlement (proxy/settle.ts): the limiter is settled
   * to it, and metrics and the log line read it. Undefined: nothing to count.
   */
  usage: Usage | undefined;
  usageSource: UsageSource | undefined;
  /** How a stream ended: completed, client_gone, upstream_error, truncated. */
  streamEnd: string | undefined;
  /** The key's x-ratelimit-* headers once the limiter admitted the request. */
  rateLimitHeaders: Readonly<Record<string, string>> | undefined;
  /** The limiter was asked for this request (admitted or refused): it counted against the key's RPM. */
  charged: boolean;
  /** The client closed the connection before the answer was complete. */
  clientGone: boolean;
  /** Set while an upstream request is open: cancels it when the client goes away. */
  abortUpstream: (() => void) | undefined;
  /** The pool's upstream that answered (or failed last), and the attempts made. */
  upstreamId: string | undefined;
  upstreamAttempts: number | undefined;
  /** The catalogue model called is going away: its answers say so, and a counter says who calls it. */
  deprecated: ModelRetirement | undefined;
  /** A retired model served by its successor: `old -> new`. */
  modelRouted: string | undefined;
}

export function newRequestState(): RequestState {
  return {
    caller: undefined,
    endpoint: undefined,
    model: undefined,
    modelLabel: 'none',
    stream: false,
    cache: 'none',
    cacheSavedNano: undefined,
    steeredKey: undefined,
    arrivedAt: performance.now(),
    upstreamStart: undefined,
    upstreamEnd: undefined,
    upstreamFirstByte: undefined,
    upstreamStatus: undefined,
    usage: undefined,
    usageSource: undefined,
    streamEnd: undefined,
    rateLimitHeaders: undefined,
    charged: false,
    clientGone: false,
    abortUpstream: undefined,
    upstreamId: undefined,
    upstreamAttempts: undefined,
    deprecated: undefined,
    modelRouted: undefined,
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    tollgate: RequestState;
  }
}
