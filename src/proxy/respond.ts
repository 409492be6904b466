import type { FastifyReply } from 'fastify';
import { performance } from 'node:perf_hooks';
import type { BatchExchange } from '../batch/index.js';
import type { AnswerSink, CacheTicket } from '../cache/response-cache.js';
import { BATCH_ANSWER_LIMIT_BYTES, readAnswer } from '../batch/index.js';
import { ClientGoneError, UpstreamInterruptedError, UpstreamInvalidAnswerError, UpstreamTimeoutError } from '../errors/errors.js';
import { isJsonObject } from '../usage/json.js';
import { mapUpstreamError } from '../errors/upstream-errors.js';
import type { Reservation } from '../limits/limiter.js';
import type { Endpoint } from './endpoints.js';
import type { UsageShape } from '../usage/shape.js';
import { pipeBody, relaySse, type StreamOutcome } from '../streaming/relay.js';
import type { UpstreamResponse } from '../upstream/client.js';
import type { ClientHead } from '../upstream/headers.js';
import { TailBuffer, usageFromJsonTail } from '../usage/json-tail.js';
import { ToolCallScanner } from '../usage/extract.js';
import type { RequestState } from './request-state.js';
import { serverTiming } from './server-timing.js';
import { settleAnswer, settleReleased, settleUnits } from './settle.js';
import type { UnitQuote } from '../usage/units.js';

/**
 * What the request side prepared, as the answer side needs it. Every field is required (`| undefined`
 * where it may be absent) so that the forwarder's literal cannot leave one out unnoticed.
 */
export interface Answering {
  readonly endpoint: Endpoint;
  readonly state: RequestState;
  readonly reservation: Reservation | undefined;
  readonly inputTokens: number;
  /** Tollgate asked upstream for stream usage the client did not ask for: strip it again. */
  readonly injectedUsage: boolean;
  readonly batch: BatchExchange | undefined;
  /** A response cache miss: the answer is offered to the cache as it is relayed. */
  readonly cache: CacheTicket | undefined;
  /** `GET /v1/models` for a key with an allow-list: the models of the list it keeps. */
  readonly filterModels: ((id: string) => boolean) | undefined;
  /** A unit-priced request: its quote, settled from the answer. */
  readonly units: UnitQuote | undefined;
}

/**
 * Send the upstream's answer to the client and settle the request. Answers bypass Fastify's
 * reply pipeline and go straight into the socket; the head carries the headers set so far
 * (x-request-id), the upstream's, and the key's rate-limit headers.
 */
export function respond(reply: FastifyReply, response: UpstreamResponse, answering: Answering): void | Promise<void> {
  const { state, reservation } = answering;
  state.upstreamStatus = response.status;
  const upstreamHead = response.head;
  if (answering.batch) return respondWhole(reply, response, upstreamHead, answering.batch, state);
  if (answering.filterModels && response.status === 200) return respondModelList(reply, response, upstreamHead, answering.filterModels, state, reservation);
  const isSse = upstreamHead.contentType?.startsWith('text/event-stream') === true;
  reply.hijack();
  reply.raw.writeHead(response.status, answerHead(reply, upstreamHead, isSse ? undefined : upstreamHead.contentLength, reservation));
  const failed = response.status >= 400;
  if (failed) settleReleased(reservation);
  const sink = answering.cache?.begin(response.status, isSse);
  if (isSse) respondStream(reply, response, answering, failed, sink);
  else respondBody(reply, response, answering, failed, sink);
}

/**
 * The answer's head: the upstream's headers (cleaned), its content-length when the body is relayed
 * unchanged, its x-request-id or tollgate's own, and the key's rate-limit headers.
 */
function answerHead(reply: FastifyReply, upstream: ClientHead, contentLength: string | undefined, reservation: Reservation | undefined): string[] {
  const head = upstream.headers;
  if (contentLength !== undefined) head.push('content-length', contentLength);
  if (!upstream.hasRequestId) head.push('x-request-id', reply.request.id);
  if (reply.server.serverTiming) head.push('server-timing', serverTiming(reply));
  const state = reply.request.tollgate;
  if (state.cache !== 'none') head.push('x-tollgate-cache', state.cache);
  if (state.upstreamId !== undefined) head.push('x-tollgate-upstream', `${state.upstreamId}; attempts=${state.upstreamAttempts ?? 1}`);
  if (state.modelRouted !== undefined) head.push('x-tollgate-model-routed', state.modelRouted);
  if (state.deprecated) head.push('sunset', state.deprecated.sunset, 'x-tollgate-model-deprecated', state.deprecated.notice);
  if (reservation) {
    const limits = reservation.headers;
    for (const name in limits) head.push(name, limits[name] as string);
  }
  return head;
}

/** JSON and binary answers, piped; usage read from the last bytes of a JSON answer. */
function respondBody(reply: FastifyReply, response: UpstreamResponse, answering: Answering, failed: boolean, sink: AnswerSink | undefined): void {
  const { endpoint, state } = answering;
  if (answering.units) return respondUnits(reply, response, answering, answering.units, failed);
  const shape = endpoint.usage;
  const tail = !failed && shape ? new TailBuffer() : undefined;
  // Responses answers: built-in tool calls are priced per call, and counted from the whole body.
  const calls = tail && shape === 'responses' ? new ToolCallScanner() : undefined;
  pipeBody(response.body, reply.raw, {
    tap: sink
      ? (chunk) => {
          tail?.push(chunk);
          calls?.push(chunk);
          sink.push(chunk);
        }
      : calls
        ? (chunk) => {
            (tail as TailBuffer).push(chunk);
            calls.push(chunk);
          }
        : tail && ((chunk) => tail.push(chunk)),
    onEnd: (end) => {
      state.upstreamEnd = performance.now();
      state.upstreamFirstByte = end.firstByteAt;
      if (end.error) state.streamEnd = 'upstream_error';
      if (failed) return;
      const read = tail && !end.error && !end.clientGone ? usageFromJsonTail(shape as UsageShape, tail.bytes()) : undefined;
      const toolCalls = read && calls?.counts();
      const usage = toolCalls ? { ...read, toolCalls } : read;
      sink?.end(!end.error && !end.clientGone, usage);
      settleAnswer(state, answering.reservation, shape, usage, answering.inputTokens, 0);
    },
  });
}

const HEAD_BYTES = 4096;
const NO_BYTES = Buffer.alloc(0);

/** A unit-priced answer (JSON or binary): its first and last bytes kept for the bill it states (src/usage/units.ts). */
function respondUnits(reply: FastifyReply, response: UpstreamResponse, answering: Answering, quote: UnitQuote, failed: boolean): void {
  const { state } = answering;
  const tail = new TailBuffer();
  const head: Buffer[] = [];
  let headSize = 0;
  pipeBody(response.body, reply.raw, {
    tap: failed
      ? undefined
      : (chunk) => {
          if (headSize < HEAD_BYTES) {
            head.push(chunk);
            headSize += chunk.length;
          }
          tail.push(chunk);
        },
    onEnd: (end) => {
      state.upstreamEnd = performance.now();
      state.upstreamFirstByte = end.firstByteAt;
      if (end.error) state.streamEnd = 'upstream_error';
      if (failed) return;
      const stated = !end.error && !end.clientGone ? quote.settle(Buffer.concat(head, headSize).subarray(0, HEAD_BYTES), tail.bytes()) : undefined;
      settleUnits(state, answering.reservation, quote, stated);
    },
  });
}

/** Server-sent events, relayed chunk by chunk; usage read on the side. */
function respondStream(reply: FastifyReply, response: UpstreamResponse, answering: Answering, failed: boolean, sink: AnswerSink | undefined): void {
  const { endpoint, state } = answering;
  state.stream = true;
  // A unit-priced stream (image partials, speech or transcript events): its last event's usage, if any.
  const tail = answering.units && !failed ? new TailBuffer() : undefined;
  relaySse(response.body, reply.raw, {
    shape: endpoint.usage,
    stripInjectedUsage: answering.injectedUsage,
    tap: tail ? (chunk) => tail.push(chunk) : sink && ((chunk) => sink.push(chunk)),
    mapError: (err) => {
      const mapped = mapUpstreamError(err);
      return mapped instanceof UpstreamTimeoutError ? mapped : new UpstreamInterruptedError();
    },
    onEnd: (outcome) => {
      state.upstreamEnd = performance.now();
      state.upstreamFirstByte = outcome.firstByteAt;
      state.streamEnd = streamEnd(outcome, endpoint);
      sink?.end(outcome.completed && !outcome.error && !outcome.clientGone, outcome.usage);
      if (failed) return;
      // A unit-priced stream: the usage of its last event, else (none, cut, client gone) its quote.
      if (answering.units) settleUnits(state, answering.reservation, answering.units, tail && !outcome.error && !outcome.clientGone ? answering.units.settle(NO_BYTES, tail.bytes()) : undefined);
      else settleAnswer(state, answering.reservation, endpoint.usage, outcome.usage, answering.inputTokens, outcome.events);
    },
  });
}

function streamEnd(outcome: StreamOutcome, endpoint: Endpoint): string {
  if (outcome.clientGone) return 'client_gone';
  if (outcome.error) return 'upstream_error';
  return outcome.completed || !endpoint.usage ? 'completed' : 'truncated';
}

/**
 * A watched batch call: its (small) answer is read whole and the queue brought up to date before
 * the client sees it, so the client's next call finds the store current.
 */
async function respondWhole(reply: FastifyReply, response: UpstreamResponse, upstreamHead: ClientHead, batch: BatchExchange, state: RequestState): Promise<void> {
  let answer: Buffer;
  try {
    answer = await readAnswer(response.body, BATCH_ANSWER_LIMIT_BYTES);
  } catch (err) {
    state.upstreamEnd = performance.now();
    await batch.answered(undefined);
    if (state.clientGone) throw new ClientGoneError();
    throw mapUpstreamError(err) ?? err;
  }
  state.upstreamEnd = performance.now();
  await batch.answered(response.status, answer);
  reply.hijack();
  reply.raw.writeHead(response.status, answerHead(reply, upstreamHead, String(answer.length), undefined));
  reply.raw.end(answer);
}

/** The model list, filtered to what the key may use (its allow-list). */
async function respondModelList(
  reply: FastifyReply,
  response: UpstreamResponse,
  upstreamHead: ClientHead,
  keep: (id: string) => boolean,
  state: RequestState,
  reservation: Reservation | undefined,
): Promise<void> {
  let answer: Buffer;
  try {
    answer = await readAnswer(response.body, BATCH_ANSWER_LIMIT_BYTES);
  } catch (err) {
    state.upstreamEnd = performance.now();
    if (state.clientGone) throw new ClientGoneError();
    throw mapUpstreamError(err) ?? err;
  }
  state.upstreamEnd = performance.now();
  let list: unknown;
  try {
    list = JSON.parse(answer.toString('utf8'));
  } catch {
    throw new UpstreamInvalidAnswerError();
  }
  if (!isJsonObject(list) || !Array.isArray(list.data)) throw new UpstreamInvalidAnswerError();
  const filtered = Buffer.from(JSON.stringify({ ...list, data: list.data.filter((model) => isJsonObject(model) && typeof model.id === 'string' && keep(model.id)) }));
  reply.hijack();
  reply.raw.writeHead(200, answerHead(reply, upstreamHead, String(filtered.length), reservation));
  reply.raw.end(filtered);
}
