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
import { ClientGoneError, InvalidRequestError, ModelNotAllowedError, ModelNotFoundError, QuotaExceededError, RateLimitError, RequestTooLargeError, TollgateError } from '../errors/errors.js';
import { mapUpstreamError } from '../errors/upstream-errors.js';
import { withCeiling } from '../limits/ceiling.js';
import type { Limiter, Reservation } from '../limits/limiter.js';
import type { Quotas } from '../quota/charge.js';
import type { Endpoint } from './endpoints.js';
import type { PrefixRoute, PrefixSteering } from '../steering/steering.js';
import { canInjectUsage, injectUsageRequest, spliceMember } from '../streaming/usage-injection.js';
import type { Upstream, UpstreamResponse } from '../upstream/client.js';
import { upstreamRequestHeaders, type UpstreamIdentity } from '../upstream/headers.js';
import { admit, admitForm, hasBudget, MANAGEMENT, type Admission } from './admission.js';
import { isJsonObject, type JsonObject } from '../usage/json.js';
import type { RequestState } from './request-state.js';
import { respond } from './respond.js';
import { checkModelAllowed } from '../keys/caller.js';
import { applyRetirement } from './retirement.js';
import { settleEstimated, settleReleased, settleUnits } from './settle.js';
import { limitUpload } from './upload.js';
import { bodyForm, holdMultipart } from './request-body.js';
import { attempt, chain, detach, type Maybe } from '../util/maybe.js';
import type { UnitQuote } from '../usage/units.js';

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
  /** `GET /v1/models` for a key with an allow-list: which models of the answer's list it keeps. */
  readonly filterModels?: ((id: string) => boolean) | undefined;
  /** Tokens the request may use (estimate + output cap): what an upstream's ceiling takes. */
  readonly tokens?: number | undefined;
  /** A unit-priced request's quote: the answer settles it. */
  readonly units?: UnitQuote | undefined;
}

export type Forward = (endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/**
 * One request through the gateway: admission (catalogue checks, the limiter's atomic reserve,
 * the batch queue), the upstream call, then the answer and its settlement (respond.ts).
 */
export function createForwarder(deps: ForwardDeps): Forward {
  const { config, catalogue, limiter, upstream, identity } = deps;

  /**
   * The request side: the body checked against the endpoint, the model resolved under the key's
   * policy, the limiter's reservation (every request with a key counts against its RPM/RPD, a
   * metered one reserves its tokens and cost too), then the batch queue. Synchronous on the
   * common path (in-memory limiter, no tokenizer); a promise only where a step has to wait.
   */
  function prepare(endpoint: Endpoint, request: FastifyRequest): Maybe<Prepared> {
    const state = request.tollgate;
    state.endpoint = endpoint.url;
    const raw = request.raw;
    const form = bodyForm(endpoint.body, raw, request.body instanceof JsonBody);
    if (form === 'json') {
      const json = request.body as JsonBody;
      const admitJson = (): Maybe<Prepared> => chain(admit(endpoint, json.value, state.caller, catalogue, config), (admission) => prepareJson(endpoint, request, json, admission));
      // Batch creation runs the models of its input file: checked first (the hot path skips it).
      return endpoint.batchQueue && endpoint.url === '/v1/batches' && request.method === 'POST' ? chain(checkBatchPolicy(state, json.value), admitJson) : admitJson();
    }
    if (form === 'multipart' && endpoint.model) {
      // The form names the model: held whole until the policy admits it, then sent as it came.
      return holdMultipart(raw, config.server.multipart_hold_bytes).then((held) =>
        prepareOpaque(endpoint, request, admitForm(endpoint, held.fields, state.caller, catalogue, config, held.fileBytes), held.bytes),
      );
    }
    // No body (an endpoint with a model then refuses or takes its default), or one without a
    // model to read (file uploads, SDP offers): streamed upstream after admission.
    const admission = endpoint.model || endpoint.units ? admit(endpoint, undefined, state.caller, catalogue, config) : MANAGEMENT;
    return chain(admission, (admitted) => prepareOpaque(endpoint, request, admitted, form === 'empty' ? undefined : 'stream'));
  }

  /** Record what admission decided; a retired model is refused or routed to its successor here (then allow-listed as it). */
  function admitted(state: RequestState, resolved: Admission): Admission {
    const admission = applyRetirement(resolved, state, catalogue);
    if (admission.model !== resolved.model && state.caller) checkModelAllowed(state.caller, admission.model?.name, admission.model);
    state.model = admission.requestedModel;
    state.modelLabel = admission.model?.name ?? (admission.requestedModel === undefined ? 'none' : 'other');
    state.stream = admission.stream;
    return admission;
  }

  /** A request whose body is not JSON (none, a held form, an upload stream): reserved, watched by the batch queue, sent. */
  function prepareOpaque(endpoint: Endpoint, request: FastifyRequest, resolved: Admission, body: Buffer | 'stream' | undefined): Maybe<Prepared> {
    const state = request.tollgate;
    const admission = admitted(state, resolved);
    if (endpoint.modelInPath) checkModelInPath(state, (request.params as { model: string }).model);
    return chain(reserve(endpoint, state, admission, undefined), (reservation) => {
      if (reservation) state.rateLimitHeaders = reservation.headers;
      return chain(watchBatch(endpoint, request, undefined), (batch) => {
        const payload = body === 'stream' ? limitUpload(request.raw, config.server.upload_limit_bytes, batch?.observeUpload) : body;
        const filterModels = endpoint.listsModels ? allowListFilter(state) : undefined;
        return { payload, reservation, inputTokens: admission.inputTokens, injectedUsage: false, batch, filterModels, units: admission.units };
      });
    });
  }

  /** The batch queue's part in a call it watches (after admission: a refused call holds nothing). */
  function watchBatch(endpoint: Endpoint, request: FastifyRequest, json: JsonBody | undefined): Maybe<BatchExchange | undefined> {
    if (!endpoint.batchQueue) return undefined;
    return deps.batches.begin({
      method: request.method,
      url: request.url,
      caller: request.tollgate.caller,
      contentType: request.headers['content-type'],
      body: json?.value,
    });
  }

  /**
   * A batch runs the models its input file's lines name: for a key with an allow-list, each must
   * be allowed (tollgate counted the file when it was uploaded through it; a file it did not see
   * cannot be checked and is refused). Batch spend is not yet reserved against budgets, so a key
   * with a budget cannot create batches through tollgate rather than run them unbudgeted.
   */
  function checkBatchPolicy(state: RequestState, body: unknown): Maybe<void> {
    const caller = state.caller;
    if (!caller) return undefined;
    if (hasBudget(caller)) {
      throw new InvalidRequestError(`Key \`${caller.id}\` has a budget, and batch spend is not budgeted by tollgate yet: create batches with a key without a budget.`, null, 'batch_not_budgeted');
    }
    const allowed = caller.models;
    if (!allowed) return undefined;
    const fileId = isJsonObject(body) ? body.input_file_id : undefined;
    if (typeof fileId !== 'string') throw new InvalidRequestError("Missing required parameter: 'input_file_id'.", 'input_file_id', 'missing_required_parameter');
    return deps.batches.fileModels(fileId).then((models) => {
      if (models === undefined) {
        throw new InvalidRequestError(
          `Key \`${caller.id}\` is limited to certain models, and tollgate has no record of the models in file \`${fileId}\`: upload the batch file through tollgate.`,
          'input_file_id',
          'model_required_by_key_policy',
        );
      }
      for (const model of models) if (!allowed.has(model)) throw new ModelNotAllowedError(caller.id, model);
    });
  }

  /** `/v1/models/{model}` outside the key's allow-list does not exist for the key (OpenAI's 404). */
  function checkModelInPath(state: RequestState, id: string): void {
    const allowed = state.caller?.models;
    if (allowed && !allowed.has(catalogue.resolve(id)?.name ?? id)) throw new ModelNotFoundError(id);
  }

  /** `GET /v1/models` for a key with an allow-list: the list it may use. */
  function allowListFilter(state: RequestState): ((id: string) => boolean) | undefined {
    const allowed = state.caller?.models;
    return allowed && ((id) => allowed.has(catalogue.resolve(id)?.name ?? id));
  }

  function prepareJson(endpoint: Endpoint, request: FastifyRequest, json: JsonBody, resolved: Admission): Maybe<Prepared> {
    const state = request.tollgate;
    const admission = admitted(state, resolved);
    const policy = state.caller?.cache;
    if (policy && isJsonObject(json.value)) {
      const ticket = deps.responseCache.open(endpoint, policy, state.modelLabel, json.value, request.headers);
      // From here on every way out releases the identical requests waiting on this one: a hit or
      // the answer settles the flight, a throw or a rejection abandons it (then exchangeOnce).
      if (ticket) return guardTicket(ticket, () => prepareCached(endpoint, request, json, admission, ticket));
    }
    return prepareUpstream(endpoint, request, json, admission, undefined);
  }

  /** A request that goes upstream: prefix steering, the body to send, the limiter's reservation. */
  function prepareUpstream(endpoint: Endpoint, request: FastifyRequest, json: JsonBody, admission: Admission, cache: CacheTicket | undefined): Maybe<Prepared> {
    const state = request.tollgate;
    const route = isJsonObject(json.value) ? deps.steering.route(endpoint.usage, json.value, admission.inputTokens) : undefined;
    if (route?.promptCacheKey !== undefined) state.steeredKey = route.promptCacheKey;
    const { payload, injectedUsage } = upstreamBody(endpoint, json, admission, route);
    const prepared = (reservation: Reservation | undefined): Maybe<Prepared> => {
      // Error answers made after this point carry the key's rate-limit headers too (app.ts).
      if (reservation) state.rateLimitHeaders = reservation.headers;
      const ready = (batch: BatchExchange | undefined): Prepared => ({
        payload,
        reservation,
        inputTokens: admission.inputTokens,
        injectedUsage,
        batch,
        affinity: route?.fingerprint,
        cache,
        tokens: tokensOf(endpoint, admission),
        units: admission.units,
      });
      return endpoint.batchQueue ? chain(watchBatch(endpoint, request, json), ready) : ready(undefined);
    };
    return chain(reserve(endpoint, state, admission, undefined), prepared);
  }

  /** The response cache first: a hit is reserved as one request and no tokens, a miss goes upstream. */
  function prepareCached(endpoint: Endpoint, request: FastifyRequest, json: JsonBody, admission: Admission, ticket: CacheTicket): Maybe<Prepared> {
    const state = request.tollgate;
    state.cache = ticket.outcome;
    const looked = (answer: Awaited<ReturnType<CacheTicket['lookup']>>): Maybe<Prepared> => {
      const hit = answer && renderHit(answer, admission.stream, json.value as JsonObject, admission.model?.prices);
      if (!hit) return prepareUpstream(endpoint, request, json, admission, ticket);
      return chain(reserve(endpoint, state, admission, 0), (reservation): Prepared => {
        if (reservation) state.rateLimitHeaders = reservation.headers;
        return { payload: undefined, reservation, inputTokens: 0, injectedUsage: false, batch: undefined, hit };
      });
    };
    return chain(ticket.lookup(state), looked);
  }

  /** The limiter's reservation: synchronous with the in-memory store, a promise with Redis. `tokens`: instead of the estimate. */
  function reserve(endpoint: Endpoint, state: RequestState, admission: Admission, tokens: number | undefined): Maybe<Reservation | undefined> {
    const caller = state.caller;
    if (!caller) return undefined;
    state.charged = true;
    const metered = endpoint.metered === true;
    const outputCap = metered ? tokensOf(endpoint, admission) - admission.inputTokens : 0;
    const counted = (err: unknown): never => {
      if (err instanceof RateLimitError || err instanceof QuotaExceededError) deps.onRefused(caller.id, state.modelLabel, err.kind);
      else if (err instanceof RequestTooLargeError) deps.onRefused(caller.id, state.modelLabel, 'tpm');
      throw err;
    };
    return attempt(
      () =>
        limiter.admit({
          caller,
          model: state.modelLabel,
          tokens: tokens ?? (metered ? admission.inputTokens + outputCap : 0),
          signal: new ClientGoneSignal(state),
          // Budgets and token quotas weigh what runs a model; management calls only count as requests.
          charge: metered ? deps.quotas.chargeFor(caller, admission.model, admission.inputTokens, outputCap, admission.units?.reserved) : undefined,
        }),
      counted,
    );
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
            identityEncoding: endpoint.usage !== undefined || batch !== undefined || prepared.filterModels !== undefined,
          }),
          body: payload,
          affinity: prepared.affinity,
          // Stateless model calls are routed over the pool; the rest stays on its default upstream.
          model: endpoint.pooled && state.model !== undefined ? state.modelLabel : undefined,
          tokens: prepared.tokens,
          maxWaitMs: state.caller?.maxWaitMs,
          share: state.caller?.share,
        },
        state,
      );
    } catch (err) {
      state.upstreamEnd = performance.now();
      if (err instanceof RateLimitError && state.caller) deps.onRefused(state.caller.id, state.modelLabel, err.kind);
      if (batch) await batch.answered(undefined);
      if (!state.clientGone) settleReleased(reservation);
      else if (prepared.units) settleUnits(state, reservation, prepared.units, undefined);
      else settleEstimated(state, reservation, prepared.inputTokens, 0);
      if (state.clientGone) throw new ClientGoneError();
      throw mapUpstreamError(err) ?? err;
    }
    // A literal, not `{ ...prepared, reservation }`: adding properties to a spread copy takes V8's slow path.
    const responding = respond(reply, response, {
      endpoint,
      state,
      reservation: withCeiling(reservation, response.ceiling),
      inputTokens: prepared.inputTokens,
      injectedUsage: prepared.injectedUsage,
      batch,
      cache: prepared.cache,
      filterModels: prepared.filterModels,
      units: prepared.units,
    });
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

  /**
   * A request refused before the limiter saw it (bad body, model, policy) still counts against
   * the key's RPM/RPD, as unsuccessful requests do at OpenAI: a client cannot repeat costly
   * refusals (an oversize prompt, a tokenizer run) for free. Nothing waits on it.
   */
  function countRefused(request: FastifyRequest, err: unknown): void {
    const state = request.tollgate;
    const caller = state.caller;
    if (!caller || state.charged || !(err instanceof TollgateError) || err.status >= 500 || err.status === 429) return;
    state.charged = true;
    // The bucket of the model the body names (refused before admission recorded it), if it names one.
    const named = request.body instanceof JsonBody && isJsonObject(request.body.value) ? request.body.value.model : undefined;
    const model = state.modelLabel !== 'none' || typeof named !== 'string' ? state.modelLabel : (catalogue.resolve(named)?.name ?? 'other');
    // Already over its limit: the refusal stands either way.
    detach(() => limiter.admit({ caller, model, tokens: 0, signal: GIVE_UP }), IGNORE);
  }

  return (endpoint, request, reply) => {
    const prepared = attempt(
      () => prepare(endpoint, request),
      (err: unknown): never => {
        countRefused(request, err);
        throw err;
      },
    );
    // exchangeOnce is async: either way the handler returns a promise.
    return chain(prepared, (ready) => exchangeOnce(endpoint, request, reply, ready)) as Promise<FastifyReply>;
  };
}

const IGNORE = (): void => undefined;

/**
 * The limiter's view of a client that went away (read only while it waits, max_wait_ms). A class:
 * an object literal with a getter is built by a runtime call on every request.
 */
class ClientGoneSignal {
  constructor(private readonly state: RequestState) {}
  get aborted(): boolean {
    return this.state.clientGone;
  }
}

/** The refusal counter never waits for a bucket to refill. */
const GIVE_UP = { aborted: true } as const;

/** A throw or a rejection while a cache ticket is open releases the identical requests waiting on it. */
function guardTicket<T>(ticket: CacheTicket, step: () => Maybe<T>): Maybe<T> {
  return attempt(step, (err: unknown): never => {
    ticket.abandon();
    throw err;
  });
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
