import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteHandlerMethod } from 'fastify';
import { destination, pino, type DestinationStream } from 'pino';
import type { Registry } from 'prom-client';
import { buildCatalogue } from './config/catalogue.js';
import type { Config } from './config/schema.js';
import {
  BodyTooLargeError,
  InternalServerError,
  InvalidJsonError,
  InvalidRequestError,
  InvalidUrlError,
  TollgateError,
} from './errors/errors.js';
import { loggerOptions, requestLine, withLazyChildren, type RequestLine } from './logging.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { costOnly, modelLabel, observeBatch, type Observed } from './metrics/observe.js';
import { nanoToUsd } from './usage/cost.js';
import { trackConnections } from './lifecycle/connections.js';
import { answerClientError, tooManyHeaders, watchBodyIdle } from './lifecycle/http-guards.js';
import { createGatewayBatchQueue } from './batch/index.js';
import { createLimiter } from './limits/limiter.js';
import { createMemoryStore } from './limits/memory-store.js';
import { createRedisStore } from './limits/redis-store.js';
import { createResilientStore } from './limits/resilient-store.js';
import type { CounterCall, LimiterStore } from './limits/store.js';
import { cacheScope } from './auth/keys.js';
import { createGatewayKeys } from './keys/index.js';
import { createKeyAdmin } from './keys/admin.js';
import { createQuotas } from './quota/charge.js';
import { createUsageReader, reportModels } from './quota/report.js';
import { adminRoutes, type AdminDeps } from './routes/admin.js';
import { selfService } from './routes/me.js';
import { createUsageRecorder } from './quota/recorder.js';
import { redisPlugin } from './plugins/redis.js';
import { newRequestState } from './proxy/request-state.js';
import { serverTiming } from './proxy/server-timing.js';
import { healthRoutes } from './routes/health.js';
import { adminOnlyRoutes, v1Routes } from './routes/v1.js';
import { createCeilings, shareSettings } from './limits/ceiling.js';
import { createUpstreamMetrics } from './metrics/upstream-metrics.js';
import { createConfiguredPool } from './upstream/configured.js';
import { startModelDates } from './upstream/model-dates.js';
import { createCaching } from './cache/setup.js';
import { adminCacheRoutes, type AdminCacheDeps } from './routes/admin-cache.js';
import { authFailureGuard } from './routes/auth-guard.js';
import { consoleEnabled, consolePlugin } from './console/plugin.js';
import { createHistoryReader, createHourlyReader } from './quota/history.js';
import { setupRealtime } from './realtime/index.js';
import { callerFromPolicy } from './keys/caller.js';
import { costOf } from './usage/cost.js';

/** Everything the app needs from the outside world. `server.ts` builds it from the environment. */
export interface AppOptions {
  readonly config: Config;
  /** Upstream base URL, e.g. https://api.openai.com/v1 (config `upstream.url` wins when set). */
  readonly upstreamUrl: string;
  /** The gateway's own upstream credential. Never logged, never returned. */
  readonly upstreamApiKey: string | undefined;
  readonly redisUrl?: string | undefined;
  readonly logLevel?: string | undefined;
  /** Where log lines go (tests capture them); stdout by default. */
  readonly logStream?: DestinationStream | undefined;
  readonly registry?: Registry | undefined;
  /** Bearer token of the admin API (TOLLGATE_ADMIN_TOKEN); unset: the admin API is off (404). */
  readonly adminToken?: string | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
    /** Set on the way into a graceful shutdown; /readyz then answers 503. */
    draining: boolean;
  }
}

/**
 * Request ids `req_<16 hex random per process><counter>`: unique across instances without paying
 * for randomness on every request.
 */
function requestIds(): () => string {
  const prefix = `req_${randomBytes(8).toString('hex')}`;
  let counter = 0;
  return () => prefix + (counter++).toString(16).padStart(8, '0');
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const logStream = options.logStream ?? destination({ sync: false });
  const rootLogger = pino(loggerOptions(options.logLevel ?? 'info'), logStream);
  const logger = withLazyChildren(rootLogger);
  // The request line goes straight to the stream (logging.ts: requestLine), when info is on.
  const writeRequestLine = (line: RequestLine): void => {
    if (rootLogger.isLevelEnabled('info')) logStream.write(requestLine(line));
  };
  /** An exception on the logging or metrics path: counted and logged, never thrown on (it would end the process). */
  const internalError = (during: string, err: unknown): void => {
    try {
      metrics.internalErrors.inc({ during });
      rootLogger.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : undefined, during }, 'internal error on the logging or metrics path');
    } catch {
      // The log stream itself failed: the counter above is all that can tell.
    }
  };
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.body_limit_bytes,
    trustProxy: config.server.trust_proxy,
    requestIdHeader: false,
    genReqId: requestIds(),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Long streams: never let the HTTP server itself cut a slow response. Request bodies have
    // their own idle timeout (server.body_idle_timeout_ms, in the onRequest hook below).
    requestTimeout: 0,
    // What Node's HTTP parser refuses is answered in OpenAI's envelope too.
    clientErrorHandler: answerClientError,
  });

  const catalogue = buildCatalogue(config);
  const metrics = createMetrics(options.registry, {
    perKeyLabels: config.metrics.per_key_labels,
    pricesOf: (model) => catalogue.resolve(model)?.prices,
    // Read per request, after the limiter below exists.
    requestsLimitOf: (caller) => (limiter.figures(caller).rpm === null ? 'rpd' : 'rpm'),
  });
  app.decorate('metrics', metrics);
  app.decorate('draining', false);
  app.decorate('serverTiming', config.server.server_timing);
  const connections = trackConnections(app.server);
  app.addHook('preClose', (done) => {
    app.draining = true;
    connections.drain();
    done();
  });

  await app.register(redisPlugin, {
    url: options.redisUrl,
    clusterNodes: config.redis.cluster_nodes,
    commandTimeoutMs: config.limits.redis_timeout_ms,
  });
  const { keys, backend: keyBackend } = await createGatewayKeys(app, config, catalogue);
  // Counters the limiter could not write (Redis down) go to the recorder, which retries them.
  const stores = limiterStore(app, config, metrics, (counters, id) => recorder.add(counters, id));
  const recorder = createUsageRecorder({
    store: stores.primary,
    keyPrefix: config.limits.key_prefix,
    // Summed in process and written once a second, to Redis or to process memory alike: reports
    // flush first, so they always include this instance's latest requests.
    intervalMs: config.usage.flush_interval_ms,
    onError: () => metrics.redisErrors.inc(),
    hourlyRetentionMs: config.usage.hourly_retention_days * 86_400_000,
  });
  // Registered after the Redis plugin, so it runs before Redis closes (onClose runs in reverse).
  app.addHook('onClose', () => recorder.close());
  const quotas = createQuotas({ keyPrefix: config.limits.key_prefix, recorder, hourlyRetentionMs: config.usage.hourly_retention_days * 86_400_000 });
  const limiter = createLimiter({
    store: stores.store,
    catalogue,
    keyPrefix: config.limits.key_prefix,
  });
  // The pool puts each upstream's own credential on the requests it sends.
  const upstream = createConfiguredPool(config, catalogue, {
    defaultUrl: options.upstreamUrl,
    apiKey: options.upstreamApiKey,
    ceilings: createCeilings({ store: stores.store, keyPrefix: config.limits.key_prefix, share: shareSettings(config) }),
    observer: (ids) => createUpstreamMetrics(metrics.registry, ids, config.metrics.per_key_labels),
  });
  // Registered after the Redis plugin, so it runs before Redis closes (onClose runs in reverse).
  app.addHook('onClose', () => upstream.close());
  // Shutdown dates the upstreams' own GET /models report (models.upstream_refresh_ms).
  const modelDates = startModelDates({
    members: upstream.members,
    catalogue,
    intervalMs: config.models.upstream_refresh_ms,
    onLearned: (models) => {
      for (const model of models) {
        const retirement = catalogue.resolve(model)?.retirement;
        app.log.info({ model, shutdown_date: retirement?.shutdownDate ?? null, successor: retirement?.successor ?? null }, 'model shutdown date learned from the upstreams');
      }
    },
    onError: (id, reason) => app.log.warn({ upstream: id, reason }, 'model shutdown dates: the upstream GET /models failed'),
  });
  app.addHook('onClose', () => modelDates.close());
  const identity = { apiKey: undefined, organization: undefined, project: undefined };
  const batches = createGatewayBatchQueue({
    config,
    redis: app.redis,
    limiter,
    catalogue,
    upstream,
    identity,
    checkIntervalMs: config.limits.batch_check_interval_ms,
    onError: (err, during) => app.log.warn({ err: err instanceof Error ? { message: err.message } : undefined, during }, 'batch queue: store or upstream error'),
    // Models outside the catalogue share one label: metric cardinality stays bounded.
    onRefused: (keyId, model) => metrics.countRateLimited(keyId, modelLabel(catalogue, model), 'batch_queue'),
    onUsage: (batch) => {
      try {
        observeBatch(batch, metrics, catalogue, logger);
      } catch (err) {
        internalError('batch_usage', err);
      }
    },
    listKeyIds: async () => [...config.keys.map((key) => key.id), ...(await keyBackend.list()).map((key) => key.id)],
  });
  app.addHook('onClose', () => batches.close());

  // With metrics off, requests are not counted; the log line still shows their cost.
  const observed: Observed = config.metrics.enabled ? metrics : costOnly(catalogue);
  // Runs in a 'close' listener or setImmediate: a throw there would be an uncaught exception.
  const observeSafely = (request: FastifyRequest, reply: FastifyReply): void => {
    try {
      observe(request, reply, observed, writeRequestLine);
    } catch (err) {
      internalError('observe', err);
    }
  };
  app.decorateRequest('tollgate', null as never);
  app.addHook('onRequest', (request, reply, done) => {
    const state = newRequestState();
    request.tollgate = state;
    metrics.inflight.inc();
    const socket = request.raw.socket;
    connections.requestStarted(socket);
    // The one listener per request. 'close' fires once per response, finished or not, so a
    // client that went away still cancels the upstream call and is logged and counted
    // (onResponse would skip it). `on`, not `once`: a response closes once, and `once` wraps
    // the listener in two more objects per request.
    reply.raw.on('close', () => {
      metrics.inflight.dec();
      connections.requestEnded(socket);
      if (reply.raw.writableFinished) {
        observeSafely(request, reply);
        return;
      }
      state.clientGone = true;
      state.abortUpstream?.();
      // Let the body stream see the close first, so it records how it ended.
      setImmediate(observeSafely, request, reply);
    });
    watchBodyIdle(request.raw, reply.raw, config.server.body_idle_timeout_ms, (error) => sendError(error, undefined, request, reply));
    done(tooManyHeaders(request.raw, config.server.max_request_headers));
  });

  // Answers through fastify's reply (refusals, errors, /v1/me): proxied answers and cache hits
  // bypass onSend and write the header with their head (proxy/respond.ts, proxy/serve-hit.ts).
  if (config.server.server_timing) {
    app.addHook('onSend', (request, reply, payload, done) => {
      if (request.url.startsWith('/v1')) reply.header('server-timing', serverTiming(reply));
      done(null, payload);
    });
  }
  app.setErrorHandler((err: FastifyError, request, reply) => sendError(toTollgateError(err, config.server.body_limit_bytes), err, request, reply));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    sendError(new InvalidUrlError(request.method, path), undefined, request, reply);
  });

  await app.register(healthRoutes, { isDraining: () => app.draining, upstreams: upstream });
  if (config.metrics.enabled) {
    app.get('/metrics', async (request, reply) => {
      reply.header('x-request-id', request.id);
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  }
  const usage = createUsageReader({ store: stores.store, recorder, limiter, keyPrefix: config.limits.key_prefix });
  // One count of failed authentications per address, client keys and admin token alike.
  const authGuard = await authFailureGuard(app, config);
  const adminApi: AdminDeps | undefined = options.adminToken
    ? {
        token: options.adminToken,
        guard: authGuard,
        admin: createKeyAdmin({ keys, backend: keyBackend, catalogue, unknownModels: config.models.unknown }),
        usage,
        reportModels: (caller, requested) => reportModels(caller, catalogue, requested),
      }
    : undefined;
  if (adminApi) await app.register(adminRoutes, { prefix: '/admin', ...adminApi });
  const caching = createCaching(config, app.redis, metrics, logger);
  const cacheApi: AdminCacheDeps | undefined = options.adminToken
    ? {
        token: options.adminToken,
        guard: authGuard,
        scopeOf: async (id) => {
          const found = keys.staticEntry(id) ?? (await keyBackend.get(id));
          return found && !('revoked_at' in found && found.revoked_at) ? cacheScope(id, found.cache) : undefined;
        },
        groupOf: async (id) => (keys.staticEntry(id) ?? (await keyBackend.get(id)))?.cache?.group,
        responseCache: caching.responseCache,
      }
    : undefined;
  if (cacheApi) await app.register(adminCacheRoutes, cacheApi);
  if (consoleEnabled(config, options.adminToken)) {
    const reading = { store: stores.store, recorder, keyPrefix: config.limits.key_prefix };
    await app.register(consolePlugin, {
      prefix: '/console',
      config,
      adminApi,
      cacheApi,
      keys,
      backend: keyBackend,
      catalogue,
      usage,
      limiter,
      history: createHistoryReader(reading),
      hourly: createHourlyReader(reading),
      registry: metrics.registry,
      upstreamHealth: () => upstream.health(),
    });
  }
  await app.register(adminOnlyRoutes);
  const realtime = setupRealtime(app, {
    config,
    onUpgrade: (socket) => connections.forget(socket),
    catalogue,
    keys,
    callerById: async (id) => {
      const entry = keys.staticEntry(id);
      const record = entry ? undefined : await keyBackend.get(id);
      const caller = entry ? callerFromPolicy(id, entry, catalogue) : record && !record.revoked_at ? keys.callerOf(record) : undefined;
      return caller && !caller.disabled && (caller.expiresAtMs === undefined || caller.expiresAtMs > Date.now()) ? caller : undefined;
    },
    limiter,
    quotas,
    redis: app.redis,
    registry: metrics.registry,
    // Realtime sessions go to the pool's first (default) upstream, with its credential.
    ...(config.upstreams[0]
      ? {
          upstreamBaseUrl: config.upstreams[0].url,
          identity: { apiKey: config.upstreams[0].api_key ?? options.upstreamApiKey, organization: config.upstreams[0].organization, project: config.upstreams[0].project },
        }
      : {
          upstreamBaseUrl: config.upstream.url ?? config.upstream.targets[0]?.url ?? options.upstreamUrl,
          identity: { apiKey: options.upstreamApiKey, organization: config.upstream.organization, project: config.upstream.project },
        }),
    logger,
    onRefused: (keyId, model, limit) => metrics.countRateLimited(keyId, model, limit),
    observe: (caller, model, usage, source) =>
      config.metrics.enabled ? metrics.usage.count(metrics.keyLabel(caller.id), model, usage, source) : costOf(catalogue.resolve(model)?.prices, usage),
  });
  await app.register(v1Routes, {
    ...caching,
    extraRoutes: [realtime.routes],
    config,
    catalogue,
    keys,
    selfService: selfService({ usage, limiter, catalogue }) as RouteHandlerMethod,
    authGuard,
    upstream,
    limiter,
    quotas,
    onRefused: (keyId, model, limit) => metrics.countRateLimited(keyId, model, limit),
    identity,
    batches,
  });
  return app;
}

/**
 * Redis when REDIS_URL is set (with the configured failure policy), process memory otherwise.
 * `primary` is the store itself, without the failure policy (the usage recorder's target).
 */
function limiterStore(
  app: FastifyInstance,
  config: Config,
  metrics: Metrics,
  onUnwrittenCounters: (counters: readonly CounterCall[], id?: string) => void,
): { store: LimiterStore; primary: LimiterStore } {
  const memory = createMemoryStore();
  app.addHook('onClose', () => memory.close());
  const redis = app.redis;
  if (!redis) return { store: memory, primary: memory };
  const primary = createRedisStore(redis);
  // Registered after the Redis plugin, so it runs before Redis closes: waiting settlements are written.
  app.addHook('onClose', () => primary.close());
  const store = createResilientStore({
    primary,
    onUnwrittenCounters,
    fallback: memory,
    mode: config.limits.on_redis_error,
    instances: config.limits.instances,
    onError: () => metrics.redisErrors.inc(),
    onSwitch: ({ degraded, error }) => {
      if (degraded) {
        app.log.error(
          { err: error instanceof Error ? { message: error.message } : undefined, policy: config.limits.on_redis_error },
          config.limits.on_redis_error === 'fail_open'
            ? 'redis unavailable: limiting locally (limits divided by limits.instances)'
            : 'redis unavailable: refusing limited requests with 503',
        );
      } else {
        app.log.warn('redis is back: limits are shared again');
      }
    },
  });
  return { store, primary };
}

function toTollgateError(err: FastifyError, bodyLimit: number): TollgateError {
  if (err instanceof TollgateError) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLargeError(bodyLimit);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new InvalidJsonError();
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new InvalidRequestError(err.message);
  return new InternalServerError();
}

function sendError(error: TollgateError, cause: unknown, request: FastifyRequest, reply: FastifyReply): void {
  if (error.status >= 500 && error instanceof InternalServerError) {
    request.log.error({ err: cause }, 'unexpected error');
  }
  if (reply.sent || reply.raw.headersSent) return;
  const limits = request.tollgate?.rateLimitHeaders;
  if (limits) reply.headers(limits);
  reply.header('x-request-id', request.id);
  reply.code(error.status).headers(error.headers).send(error.toBody());
}

/** The one log line and the metrics of a finished request. */
function observe(request: FastifyRequest, reply: FastifyReply, metrics: Observed, log: (line: RequestLine) => void): void {
  const state = request.tollgate;
  const endpoint = state.endpoint ?? request.routeOptions.url ?? 'unmatched';
  const totalMs = reply.elapsedTime;
  const upstreamMs =
    state.upstreamStart !== undefined ? (state.upstreamEnd ?? performance.now()) - state.upstreamStart : undefined;
  // 499 (nginx's "client closed request") when the client left before an answer started;
  // a stream it left mid-way keeps its status and says so in stream_end.
  const status = reply.raw.headersSent ? reply.statusCode : 499;
  const cost = metrics.recordRequest(state, endpoint, status, totalMs, upstreamMs);
  log({
    reqId: request.id,
    key_id: state.caller?.id,
    method: request.method,
    endpoint,
    model: state.model,
    status,
    stream: state.stream || undefined,
    stream_end: state.streamEnd,
    upstream_status: state.upstreamStatus,
    upstream_ms: upstreamMs,
    upstream: state.upstreamId,
    attempts: state.upstreamAttempts,
    total_ms: totalMs,
    input_tokens: state.usage?.inputTokens,
    cached_tokens: state.usage?.cachedTokens,
    output_tokens: state.usage?.outputTokens,
    tokens_source: state.usageSource,
    cost_usd: cost && nanoToUsd(cost.total),
    cost_nano: cost?.total,
    cache: state.cache === 'none' ? undefined : state.cache,
    saved_usd: state.cacheSavedNano === undefined ? undefined : nanoToUsd(state.cacheSavedNano),
    saved_nano: state.cacheSavedNano,
    prompt_cache_key: state.steeredKey,
  });
}
