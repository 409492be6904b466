import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { KeyStore } from '../auth/keys.js';
import type { Catalogue } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import {
  BodyTooLargeError,
  ClientGoneError,
  InvalidJsonError,
  RateLimitError,
  RequestTooLargeError,
  UnauthenticatedFloodError,
  UpstreamInterruptedError,
  type TollgateError,
  UpstreamTimeoutError,
} from '../errors/errors.js';
import { mapUpstreamError } from '../errors/upstream-errors.js';
import { admit, type Admission } from '../proxy/admission.js';
import { pipeBody, relaySse } from '../streaming/relay.js';
import { canInjectUsage, injectUsageRequest } from '../streaming/usage-injection.js';
import type { Upstream } from '../upstream/client.js';
import { clientResponseHeaders, upstreamRequestHeaders, type UpstreamIdentity } from '../upstream/headers.js';
import { ENDPOINTS, type Endpoint, type UsageShape } from './endpoints.js';
import type { Limiter, Reservation } from '../limits/limiter.js';
import { settleEstimated, settleReleased, settleWithUsage } from '../proxy/settle.js';
import { TailBuffer, usageFromJsonTail } from '../usage/json-tail.js';
import { BATCH_ANSWER_LIMIT_BYTES, readAnswer, type BatchQueue } from '../batch/index.js';

export interface V1Deps {
  readonly config: Config;
  readonly limiter: Limiter;
  /** Count a refusal by the limiter (429). */
  readonly onRefused: (keyId: string, model: string, limit: string) => void;
  readonly catalogue: Catalogue;
  readonly keys: KeyStore;
  readonly upstream: Upstream;
  readonly identity: UpstreamIdentity;
  /** The batch queue limit: counts batch uploads, reserves on batch creation, releases on terminal statuses. */
  readonly batches: BatchQueue;
}

/** A JSON request body: the bytes as received (forwarded untouched) and their parsed value. */
export class JsonBody {
  constructor(
    readonly raw: Buffer,
    readonly value: unknown,
  ) {}
}

function hasRequestBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Count an upload's bytes on their way upstream and stop it at the limit. Nothing is buffered whole. */
function limitUpload(source: IncomingMessage, limitBytes: number, tap?: (chunk: Buffer) => void): Readable {
  const declared = Number(source.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw new BodyTooLargeError(limitBytes);
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limitBytes) {
        callback(new BodyTooLargeError(limitBytes));
        return;
      }
      tap?.(chunk);
      callback(null, chunk);
    },
  });
  source.on('error', (err) => counter.destroy(err));
  return source.pipe(counter);
}

export async function v1Routes(app: FastifyInstance, deps: V1Deps): Promise<void> {
  const { config, catalogue, keys, upstream, identity, limiter } = deps;

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.server.body_limit_bytes }, (_req, raw, done) => {
    const bytes = raw as Buffer;
    try {
      done(null, new JsonBody(bytes, JSON.parse(bytes.toString('utf8'))));
    } catch {
      done(new InvalidJsonError(), undefined);
    }
  });
  // Everything else (multipart uploads, audio, …) stays an unread stream, piped upstream as it arrives.
  app.removeContentTypeParser(['text/plain']);
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // Authentication in three steps: identify the key, let the per-address guard count what failed
  // (@fastify/rate-limit, on the shared Redis when there is one), then refuse what failed.
  app.addHook('onRequest', (request, _reply, done) => {
    try {
      request.tollgate.caller = keys.authenticate(request.headers.authorization);
    } catch (err) {
      request.tollgate.authError = err as TollgateError;
    }
    done();
  });
  if (config.server.unauthenticated_rpm > 0) {
    await app.register(rateLimit, {
      global: true,
      hook: 'onRequest',
      max: config.server.unauthenticated_rpm,
      timeWindow: 60_000,
      allowList: (request) => request.tollgate.authError === undefined,
      redis: app.redis,
      nameSpace: `${config.limits.key_prefix}unauthenticated:`,
      skipOnError: true,
      addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': false },
      addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
      errorResponseBuilder: (_request, context) => new UnauthenticatedFloodError(context.ttl),
    });
  }
  // preParsing: after every onRequest hook (the guard's are route-level), before the body is read.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    done(request.tollgate.authError, payload);
  });

  for (const endpoint of ENDPOINTS) {
    app.route({
      method: [...endpoint.methods],
      url: endpoint.url,
      handler: (request, reply) => forward(endpoint, request, reply),
    });
  }

  async function forward(endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const state = request.tollgate;
    const json = request.body instanceof JsonBody ? request.body : undefined;
    let payload: Buffer | Readable | undefined = json?.raw;
    // Batch queue: uploads, batch creation (may refuse: 429 token_limit_exceeded), retrieval, cancellation.
    const watching = deps.batches.begin({
      method: request.method,
      url: request.url,
      caller: state.caller,
      contentType: request.headers['content-type'],
      body: json?.value,
    });
    const batch = watching && (await watching);
    let admission: Admission | undefined;
    let reservation: Reservation | undefined;
    let injectedUsage = false;
    if (json) {
      const admitted = admit(endpoint, json.value, catalogue, config);
      admission = admitted instanceof Promise ? await admitted : admitted;
      state.model = admission.requestedModel;
      state.modelLabel = admission.model?.name ?? (admission.requestedModel === undefined ? 'none' : 'other');
      state.stream = admission.stream;
      const rewritten = admission.rewriteModelTo === undefined ? undefined : { ...(json.value as Record<string, unknown>), model: admission.rewriteModelTo };
      // Ask for usage on every chat / legacy-completions stream; relaySse takes it out again.
      const injected = canInjectUsage(endpoint.usage) && admission.stream
        ? injectUsageRequest(rewritten ?? (json.value as Record<string, unknown>), rewritten ? undefined : json.raw)
        : undefined;
      if (injected) {
        payload = injected;
        injectedUsage = true;
      } else if (rewritten) {
        payload = Buffer.from(JSON.stringify(rewritten));
      }
      if ((endpoint.limited ?? endpoint.checksModel) && admission.requestedModel !== undefined && state.caller) {
        const outputCap = admission.outputCap ?? (endpoint.modelCall ? config.limits.default_output_tokens : 0);
        try {
          reservation = await limiter.admit({
            caller: state.caller,
            model: state.modelLabel,
            tokens: admission.inputTokens + outputCap,
            signal: { get aborted() { return state.clientGone; } },
          });
        } catch (err) {
          if (err instanceof RateLimitError) deps.onRefused(state.caller.id, state.modelLabel, err.kind);
          else if (err instanceof RequestTooLargeError) deps.onRefused(state.caller.id, state.modelLabel, 'tpm');
          throw err;
        }
        reply.headers(reservation.headers);
      }
    } else if (hasRequestBody(request.raw)) {
      payload = limitUpload(request.raw, config.server.upload_limit_bytes, batch?.observeUpload);
    }
    const inputTokens = admission?.inputTokens ?? 0;

    // The client may have left while admission waited (tokenizer, Redis, max_wait_ms).
    if (state.clientGone) {
      if (reservation) settleEstimated(reservation, inputTokens, 0);
      throw new ClientGoneError();
    }
    // undici accepts an EventEmitter as abort signal: cheaper than an AbortController per request.
    const abort = new EventEmitter();
    state.abortUpstream = () => abort.emit('abort');
    state.upstreamStart = performance.now();
    let response;
    try {
      response = await upstream.send({
        method: request.method as Dispatcher.HttpMethod,
        path: request.url.slice('/v1'.length),
        headers: upstreamRequestHeaders(request.headers, identity, {
          contentLength: Buffer.isBuffer(payload) ? payload.length : undefined,
          identityEncoding: endpoint.usage !== undefined || batch !== undefined,
        }),
        body: payload,
        signal: abort,
      });
    } catch (err) {
      state.upstreamEnd = performance.now();
      if (batch) await batch.answered(undefined);
      if (reservation) {
        if (state.clientGone) settleEstimated(reservation, inputTokens, 0);
        else settleReleased(reservation);
      }
      if (state.clientGone) throw new ClientGoneError();
      throw mapUpstreamError(err) ?? err;
    }
    state.upstreamStatus = response.status;
    if (batch) {
      // A watched batch call: its (small) answer is read whole and the queue brought up to date
      // before the client sees it, so the client's next call finds the store current.
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
      reply.raw.writeHead(response.status, {
        ...(reply.getHeaders() as Record<string, string | string[]>),
        ...clientResponseHeaders(response.headers, false),
        'content-length': String(answer.length),
      });
      reply.raw.end(answer);
      return reply;
    }
    const contentType = response.headers['content-type'];
    const isSse = typeof contentType === 'string' && contentType.startsWith('text/event-stream');
    // Answers bypass Fastify's reply pipeline and go straight into the socket; the head carries
    // the headers set so far (x-request-id) and the upstream's.
    // The key's rate-limit headers replace the upstream's (those describe the gateway's own
    // organisation).
    reply.hijack();
    reply.raw.writeHead(response.status, {
      ...(reply.getHeaders() as Record<string, string | string[]>),
      ...clientResponseHeaders(response.headers, !isSse),
      ...reservation?.headers,
    });
    const failed = response.status >= 400;
    if (reservation && failed) settleReleased(reservation);
    if (!isSse) {
      const tail = reservation && !failed && endpoint.usage ? new TailBuffer() : undefined;
      pipeBody(response.body, reply.raw, {
        tap: tail && ((chunk) => tail.push(chunk)),
        onEnd: (end) => {
          state.upstreamEnd = performance.now();
          if (end.error) state.streamEnd = 'upstream_error';
          if (!reservation || failed) return;
          const usage = tail && !end.error && !end.clientGone ? usageFromJsonTail(endpoint.usage as UsageShape, tail.bytes()) : undefined;
          state.usage = usage;
          if (usage) settleWithUsage(reservation, usage);
          else settleEstimated(reservation, inputTokens, 0);
        },
      });
      return reply;
    }
    state.stream = true;
    relaySse(response.body, reply.raw, {
      shape: endpoint.usage,
      stripInjectedUsage: injectedUsage,
      mapError: (err) => {
        const mapped = mapUpstreamError(err);
        return mapped instanceof UpstreamTimeoutError ? mapped : new UpstreamInterruptedError();
      },
      onEnd: (outcome) => {
        state.upstreamEnd = performance.now();
        state.usage = outcome.usage;
        if (reservation && !failed) {
          if (outcome.usage) settleWithUsage(reservation, outcome.usage);
          else settleEstimated(reservation, inputTokens, outcome.events);
        }
        state.streamEnd = outcome.clientGone
          ? 'client_gone'
          : outcome.error
            ? 'upstream_error'
            : outcome.completed || !endpoint.usage
              ? 'completed'
              : 'truncated';
      },
    });
    return reply;
  }
}
