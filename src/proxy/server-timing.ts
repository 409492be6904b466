import type { FastifyReply } from 'fastify';
import { performance } from 'node:perf_hooks';
import { hundredths } from '../util/hundredths.js';

/**
 * `Server-Timing: tollgate;dur=X, upstream;dur=Y` (milliseconds): what the gateway added to the
 * request so far, and the upstream's share. Computed as the overhead histogram computes it (total
 * time since fastify received the request, minus the time since the upstream call was sent), at
 * the moment the head is written: for a stream, that is the gateway's overhead before the first
 * byte. Without an upstream call (refusals, cache hits) there is no `upstream` entry. One string.
 */
export function serverTiming(reply: FastifyReply): string {
  const now = performance.now();
  const total = reply.elapsedTime;
  const start = reply.request.tollgate?.upstreamStart;
  if (start === undefined) return 'tollgate;dur=' + ms(total);
  const upstream = (reply.request.tollgate.upstreamEnd ?? now) - start;
  return 'tollgate;dur=' + ms(total - upstream) + ', upstream;dur=' + ms(upstream);
}

/** Two decimals, never negative (the two clocks are read a few nanoseconds apart). */
function ms(value: number): string {
  return value > 0 ? hundredths(value) : '0';
}

declare module 'fastify' {
  interface FastifyInstance {
    /** config server.server_timing: send the Server-Timing header on /v1 answers. */
    serverTiming: boolean;
  }
}
