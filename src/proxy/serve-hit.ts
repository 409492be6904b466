import type { FastifyReply } from 'fastify';
import type { RenderedHit } from '../cache/render.js';
import type { Reservation } from '../limits/limiter.js';
import type { RequestState } from './request-state.js';
import { serverTiming } from './server-timing.js';
import { settleReleased } from './settle.js';

/**
 * Answer from the cache: straight into the socket like upstream answers, with tollgate's request
 * id, the key's rate-limit headers and `x-tollgate-cache: hit`. No tokens are counted (the
 * reservation held none), the saving is.
 */
export function serveHit(reply: FastifyReply, state: RequestState, hit: RenderedHit, reservation: Reservation | undefined): void {
  state.cache = 'hit';
  state.cacheSavedNano = hit.savedNano;
  settleReleased(reservation);
  const head = [
    'content-type',
    hit.contentType,
    'content-length',
    String(hit.body.length),
    'x-request-id',
    reply.request.id,
    'openai-version',
    '2020-10-01',
    'openai-processing-ms',
    '0',
    'x-tollgate-cache',
    'hit',
  ];
  if (reply.server.serverTiming) head.push('server-timing', serverTiming(reply));
  if (reservation) {
    const limits = reservation.headers;
    for (const name in limits) head.push(name, limits[name] as string);
  }
  reply.hijack();
  reply.raw.writeHead(200, head);
  reply.raw.end(hit.body);
}
