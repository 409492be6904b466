import type { FastifyReply, FastifyRequest } from 'fastify';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { BatchExchange, BatchQueue } from '../batch/index.js';
import type { CacheTicket, ResponseCache } from '../cache/response-cache.js';
import { renderHit, type RenderedHit } from '../cache/render.js';
import { serveHit } from './serve-hit.js';
import type { Catalogue } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import { ClientGoneError, QuotaExceededError, RateLimitError, RequestTooLargeError } from '../errors/errors.js';
import { mapUpstreamError } from '../errors/upstream-errors.js';
import { checkModelAllowed } from '../keys/caller.js';
import { withCeiling } from '../limits/ceiling.js';
import type { Limiter, Reservation } from '../limits/limiter.js';
import type { Quotas } from '../quota/charge.js';
import type { Endpoint } from './endpoints.js';
import type { PrefixRoute, PrefixSteering } from '../steering/steering.js';
import { canInjectUsage, injectUsageRequest, spliceMember } from '../streaming/usage-injection.js';
import type { Upstream, UpstreamResponse } from '../upstream/client.js';
import { upstreamRequestHeaders, type UpstreamIdentity } from '../upstream/headers.js';
import { admit, type Admission } from './admission.js';
import { isJsonObject, type JsonObject } from '../usage/json.js';
import type { RequestState } from './request-state.js';
import { respond } from './respond.js';
import { applyRetirement } from './retirement.js';
import { settleEstimated, settleReleased } from './settle.js';
import { hasRequestBody, limitUpload } from './upload.js';

/** A JSON request body: the bytes as received (forwarded untouched) and their parsed value. */
export class JsonBody {
  constructor(
    readonly raw: Buffer,
    readonly value: unknown,
  ) {}
}

export interface ForwardDeps {
  readonly config: Config;
  readonly catalogue: Catalogue;
  readonly limiter: Limiter;
  readonly upstream: Upstream;
  readonly identity: UpstreamIdentity;
  /** The batch queue limit: counts batch uploads, reserves on batch creation, releases on terminal statuses. */
  readonly batches: BatchQueue;
  /** Budgets, token quotas and usage counters of keys. */
  readonly quotas: Quotas;
  /** Count a refusal by the limiter (429). */
  readonly onRefused: (keyId: string, model: string, limit: string) => void;
  /** The exact-repeat cache (used only for keys with a cache policy). */
  readonly responseCache: ResponseCache;
  /** Prompt fingerprints: `prompt_cache_key` steering and upstream affinity. */
  readonly steering: PrefixSteering;
}

/** The request side, prepared: what goes upstream and what the answer side must know. */
interface Prepared {
  readonly payload: Buffer | Readable | undefined;
  readonly reservation: Reservation | undefined;
  readonly inputTokens: number;
  readonly injectedUsage: boolean;
  readonly batch: BatchExchange | undefined;
  /** The prompt's fingerprint, for upstream affinity. */
  readonly affinity?: string | undefined;
  /** Served from the response cache: no upstream call. */
  readonly hit?: RenderedHit | undefined;
  /** A miss of the response cache: the answer is offered to it. */
  readonly cache?: CacheTicket | undefined;
  /** Tokens the request may use (estimate + output cap): what an upstream's ceiling takes. */
  readonly tokens?: number | undefined;
}

export type Forward = (endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/**
 * One request through the gateway: admission (catalogue checks, the limiter's atomic reserve,
 * the batch queue), the upstream call, then the answer and its settlement (respond.ts).
 */
export function createForwarder(deps: ForwardDeps): Forward {
  const { config, catalogue, limiter, upstream, identity } = deps;

  /**
   * The request side. Synchronous on the common path (in-memory limiter, no tokenizer, no batch
   * call); a promise only where a step has to wait.
   */
  function prepare(endpoint: Endpoint, request: FastifyRequest): Prepared | Promise<Prepared> {
    const state = request.tollgate;
    state.endpoint = endpoint.url;
    const json = request.body instanceof JsonBody ? request.body : undefined;
    const watching = endpoint.batchQueue
      ? deps.batches.begin({
          method: request.method,
          url: request.url,
          caller: state.caller,
          contentType: request.headers['content-type'],
          body: json?.value,
        })
      : undefined;
    if (watching) return watching.then((batch) => prepareBody(endpoint, request, json, batch));
    return prepareBody(endpoint, request, json, undefined);
  }

  function prepareBody(endpoint: Endpoint, request: FastifyRequest, json: JsonBody | undefined, batch: BatchExchange | undefined): Prepared | Promise<Prepared> {
    if (!json) {
      const payload = hasRequestBody(request.raw) ? limitUpload(request.raw, config.server.upload_limit_bytes, batch?.observeUpload) : undefined;
      return { payload, reservation: undefined, inputTokens: 0, injectedUsage: false, batch };
    }
    const admitted = admit(endpoint, json.value, catalogue, config);
    if (admitted instanceof Promise) return admitted.then((admission) => prepareAdmitted(endpoint, request, json, admission, batch));
    return prepareAdmitted(endpoint, request, json, admitted, batch);
  }

  function prepareAdmitted(endpoint: Endpoint, request: FastifyRequest, json: JsonBody, admitted: Admission, batch: BatchExchange | undefined): Prepared | Promise<Prepared> {
    const state = request.tollgate;
    const admission = applyRetirement(admitted, state, catalogue);
    state.model = admission.requestedModel;
    state.modelLabel = admission.model?.name ?? (admission.requestedModel === undefined ? 'none' : 'other');
    state.stream = admission.stream;
    if (state.caller?.models && endpoint.checksModel) checkModelAllowed(state.caller, admission.requestedModel, admission.model);
    const policy = state.caller?.cache;
    if (policy && isJsonObject(json.value)) {
      const ticket = deps.responseCache.open(endpoint, policy, state.modelLabel, json.value, request.headers);
      if (ticket) return prepareCached(endpoint, state, json, admission, batch, ticket);
    }
    return prepareUpstream(endpoint, state, json, admission, batch, undefined);
  }

  /** A request that goes upstream: prefix steering, the body to send, the limiter's reservation. */
  function prepareUpstream(endpoint: Endpoint, state: RequestState, json: JsonBody, admission: Admission, batch: BatchExchange | undefined, cache: CacheTicket | undefined): Prepared | Promise<Prepared> {
    const route = isJsonObject(json.value) ? deps.steering.route(endpoint.usage, json.value, admission.inputTokens) : undefined;
    if (route?.promptCacheKey !== undefined) state.steeredKey = route.promptCacheKey;
    const { payload, injectedUsage } = upstreamBody(endpoint, json, admission, route);
    const prepared = (reservation: Reservation | undefined): Prepared => {
      // Error answers made after this point carry the key's rate-limit headers too (app.ts).
      if (reservation) state.rateLimitHeaders = reservation.headers;
      return { payload, reservation, inputTokens: admission.inputTokens, injectedUsage, batch, affinity: route?.fingerprint, cache, tokens: tokensOf(endpoint, admission) };
    };
    const reserved = guardTicket(cache, () => reserve(endpoint, state, admission, undefined));
    return reserved instanceof Promise ? reserved.then(prepared) : prepared(reserved);
  }

  /** The response cache first: a hit is reserved as one request and no tokens, a miss goes upstream. */
  function prepareCached(endpoint: Endpoint, state: RequestState, json: JsonBody, admission: Admission, batch: BatchExchange | undefined, ticket: CacheTicket): Prepared | Promise<Prepared> {
    state.cache = ticket.outcome;
    const looked = (answer: Awaited<ReturnType<CacheTicket['lookup']>>): Prepared | Promise<Prepared> => {
      const hit = answer && renderHit(answer, admission.stream, json.value as JsonObject, admission.model?.prices);
      if (!hit) return prepareUpstream(endpoint, state, json, admission, batch, ticket);
      const served = (reservation: Reservation | undefined): Prepared => {
        if (reservation) state.rateLimitHeaders = reservation.headers;
        return { payload: undefined, reservation, inputTokens: 0, injectedUsage: false, batch, hit };
      };
      const reserved = reserve(endpoint, state, admission, 0);
      return reserved instanceof Promise ? reserved.then(served) : served(reserved);
    };
    const found = ticket.lookup();
    return found instanceof Promise ? found.then(looked) : looked(found);
  }

  /** The limiter's reservation: synchronous with the in-memory store, a promise with Redis. `tokens`: instead of the estimate. */
  function reserve(endpoint: Endpoint, state: RequestState, admission: Admission, tokens: number | undefined): Reservation | undefined | Promise<Reservation> {
    const caller = state.caller;
    if (!(endpoint.limited ?? endpoint.checksModel) || admission.requestedModel === undefined || !caller) return undefined;
    const outputCap = tokensOf(endpoint, admission) - admission.inputTokens;
    const counted = (err: unknown): never => {
      if (err instanceof RateLimitError || err instanceof QuotaExceededError) deps.onRefused(caller.id, state.modelLabel, err.kind);
      else if (err instanceof RequestTooLargeError) deps.onRefused(caller.id, state.modelLabel, 'tpm');
      throw err;
    };
    try {
      const reserved = limiter.admit({
        caller,
        model: state.modelLabel,
        tokens: tokens ?? admission.inputTokens + outputCap,
        signal: { get aborted() { return state.clientGone; } },
        charge: deps.quotas.chargeFor(caller, admission.model, admission.inputTokens, outputCap),
      });
      return reserved instanceof Promise ? reserved.catch(counted) : reserved;
    } catch (err) {
      return counted(err);
    }
  }

  /** Estimated input + the output cap (or the configured default for model calls). */
  function tokensOf(endpoint: Endpoint, admission: Admission): number {
    return admission.inputTokens + (admission.outputCap ?? (endpoint.modelCall ? config.limits.default_output_tokens : 0));
  }

  /** The upstream call, then the answer (respond.ts). */
  async function exchange(endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply, prepared: Prepared): Promise<FastifyReply> {
    const state = request.tollgate;
    const { payload, reservation, batch } = prepared;
    // The client may have left while admission waited (tokenizer, Redis, max_wait_ms).
    // The upstream never sees it: nothing was used.
    if (state.clientGone) {
      settleReleased(reservation);
      throw new ClientGoneError();
    }
    if (prepared.hit) {
      serveHit(reply, state, prepared.hit, reservation);
      return reply;
    }
    state.upstreamStart = performance.now();
    let response: UpstreamResponse;
    try {
      // The upstream call hands `state` its abort: a client that goes away cancels it.
      response = await upstream.send(
        {
          method: request.method as Dispatcher.HttpMethod,
          path: request.url.slice('/v1'.length),
          headers: upstreamRequestHeaders(request.headers, identity, {
            contentLength: Buffer.isBuffer(payload) ? payload.length : undefined,
            identityEncoding: endpoint.usage !== undefined || batch !== undefined,
          }),
          body: payload,
          affinity: prepared.affinity,
          // Stateless model calls are routed over the pool; the rest stays on its default upstream.
          model: endpoint.checksModel && state.model !== undefined ? state.modelLabel : undefined,
          tokens: prepared.tokens,
          maxWaitMs: state.caller?.maxWaitMs,
        },
        state,
      );
    } catch (err) {
      state.upstreamEnd = performance.now();
      if (err instanceof RateLimitError && state.caller) deps.onRefused(state.caller.id, state.modelLabel, err.kind);
      if (batch) await batch.answered(undefined);
      if (state.clientGone) settleEstimated(state, reservation, prepared.inputTokens, 0);
      else settleReleased(reservation);
      if (state.clientGone) throw new ClientGoneError();
      throw mapUpstreamError(err) ?? err;
    }
    const responding = respond(reply, response, { endpoint, state, ...prepared, reservation: withCeiling(reservation, response.ceiling) });
    if (responding) await responding;
    return reply;
  }

  /** A cache miss that fails before its answer is relayed releases the identical requests waiting on it. */
  function exchangeOnce(endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply, prepared: Prepared): Promise<FastifyReply> {
    const exchanged = exchange(endpoint, request, reply, prepared);
    const ticket = prepared.cache;
    if (!ticket) return exchanged;
    return exchanged.catch((err: unknown) => {
      ticket.abandon();
      throw err;
    });
  }

  return (endpoint, request, reply) => {
    const prepared = prepare(endpoint, request);
    if (prepared instanceof Promise) return prepared.then((ready) => exchangeOnce(endpoint, request, reply, ready));
    return exchangeOnce(endpoint, request, reply, prepared);
  };
}

/** A refusal while a cache ticket is open releases the identical requests waiting on it. */
function guardTicket<T>(ticket: CacheTicket | undefined, step: () => T): T {
  if (!ticket) return step();
  try {
    const result = step();
    if (result instanceof Promise) {
      result.catch(() => ticket.abandon());
    }
    return result;
  } catch (err) {
    ticket.abandon();
    throw err;
  }
}

/**
 * The bytes to send upstream: the client's own, untouched, unless the catalogue maps the model
 * elsewhere, prefix steering sets a `prompt_cache_key` (spliced into the bytes), or a chat /
 * legacy-completions stream needs usage asked for (stripped again on the way back).
 */
function upstreamBody(endpoint: Endpoint, json: JsonBody, admission: Admission, route: PrefixRoute | undefined): { payload: Buffer; injectedUsage: boolean } {
  let value = json.value as JsonObject;
  let raw: Buffer | undefined = json.raw;
  if (admission.rewriteModelTo !== undefined) {
    value = { ...value, model: admission.rewriteModelTo };
    raw = undefined;
  }
  const key = route?.promptCacheKey;
  if (key !== undefined) {
    value = { ...value, prompt_cache_key: key };
    raw = raw && spliceMember(raw, Buffer.from(`,"prompt_cache_key":${JSON.stringify(key)}`));
  }
  const injected = canInjectUsage(endpoint.usage) && admission.stream ? injectUsageRequest(value, raw) : undefined;
  if (injected) return { payload: injected, injectedUsage: true };
  if (raw) return { payload: raw, injectedUsage: false };
  return { payload: Buffer.from(JSON.stringify(value)), injectedUsage: false };
}
