import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Caller } from '../auth/keys.js';
import type { ModelPricesNano } from '../config/catalogue.js';
import type { Usage } from '../usage/extract.js';
import type { Cost } from '../usage/cost.js';
import { FastHistogram, type Observer } from './histogram.js';
import { createRemainingGauge, type RemainingGauge, type RequestsLimit } from './ratelimit-gauge.js';
import { Tally, type Cell } from './tally.js';
import { createUsageMetrics, type UsageMetrics, type UsageSource } from './usage-metrics.js';

/** What the metrics read of a finished request (the proxy's RequestState satisfies it). */
export interface ObservedRequest {
  readonly caller: Caller | undefined;
  readonly modelLabel: string;
  readonly cache: string;
  readonly cacheSavedNano: number | undefined;
  readonly arrivedAt: number;
  readonly upstreamStart: number | undefined;
  readonly upstreamFirstByte: number | undefined;
  readonly upstreamStatus: number | undefined;
  readonly usage: Usage | undefined;
  readonly usageSource: UsageSource | undefined;
  readonly streamEnd: string | undefined;
  readonly rateLimitHeaders: Readonly<Record<string, string>> | undefined;
  readonly clientGone: boolean;
  /** The catalogue model called is going away (its shutdown date is set and not reached). */
  readonly deprecated?: { readonly model: string } | undefined;
}

/**
 * Metric definitions on an injected Registry (tests build as many as they like). Labels are
 * bounded: `key` is a key id (or `all` without per-key labels), `model` a catalogue name or
 * `other`, `endpoint` a route template.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Requests being served now: a plain counter, read by the gauge only when scraped. */
  readonly inflight: { inc(): void; dec(): void };
  readonly redisErrors: Counter;
  /** Failed or timed-out calls of the response cache's store, by `during` (get, set); each was a miss. */
  readonly cacheErrors: Counter<'during'>;
  /** Exceptions on the logging and metrics path (`during`: observe, batch_usage), caught so they cannot end the process. */
  readonly internalErrors: Counter<'during'>;
  /** Tokens, cost, savings and unpriced tokens (also fed by the batch queue). */
  readonly usage: UsageMetrics;
  readonly remaining: RemainingGauge;
  /** The `key` label of a key id. */
  keyLabel(keyId: string): string;
  /** A 429 of the limiter or the batch queue. */
  countRateLimited(keyId: string, model: string, limit: string): void;
  /**
   * Count one finished request: requests, durations (milliseconds in, seconds out), time to first
   * token, upstream errors, its usage and the key's remaining limits. Returns the request's cost
   * when it used tokens (for the log line).
   */
  recordRequest(state: ObservedRequest, endpoint: string, status: number, totalMs: number, upstreamMs: number | undefined): Cost | undefined;
}

export interface MetricsOptions {
  readonly defaultMetrics?: boolean;
  /** false: every key is labelled `all` (deployments with very many keys). */
  readonly perKeyLabels?: boolean;
  /** A model's prices by its catalogue name; undefined: unpriced. */
  readonly pricesOf?: (model: string) => ModelPricesNano | undefined;
  /** Which bucket a key's `-requests` rate-limit headers describe. */
  readonly requestsLimitOf?: (caller: Caller) => RequestsLimit;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

interface EndpointObservers {
  readonly total: Observer;
  readonly upstream: Observer;
  readonly overhead: Observer;
  readonly firstByte: Observer;
}

export function createMetrics(registry: Registry = new Registry(), options: MetricsOptions = {}): Metrics {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'tollgate_' });
  const keyLabel = options.perKeyLabels === false ? () => 'all' : (keyId: string) => keyId;
  const inflight = inflightGauge(registry);
  const durations = durationHistograms(registry);
  const requests = new Tally({
    name: 'tollgate_requests_total',
    help: 'Requests answered, by key id, model, endpoint template, status class (2xx, 4xx, 5xx) and response cache outcome.',
    labelNames: ['key', 'model', 'endpoint', 'status_class', 'cache'],
    registry,
  });
  const upstreamErrors = new Tally({
    name: 'tollgate_upstream_errors_total',
    help: 'Upstream failures: an upstream status >= 500, or `unreachable` / `timeout` (the gateway answered 502 / 504) / `stream_cut` (the body failed mid-way).',
    labelNames: ['status'],
    registry,
  });
  const rateLimited = new Counter({
    name: 'tollgate_rate_limited_total',
    help: 'Requests refused with 429 by the limiter, by key id, model and the limit that refused (rpm, rpd, tpm, budget, token_quota, batch_queue).',
    labelNames: ['key', 'model', 'limit'],
    registers: [registry],
  });
  const redisErrors = new Counter({
    name: 'tollgate_redis_errors_total',
    help: 'Failed or timed-out Redis calls of the limiter.',
    registers: [registry],
  });
  const cacheErrors = new Counter({
    name: 'tollgate_response_cache_errors_total',
    help: 'Failed or timed-out calls of the response cache store (during: get, set); each request concerned was served as a miss.',
    labelNames: ['during'],
    registers: [registry],
  });
  const internalErrors = new Counter({
    name: 'tollgate_internal_errors_total',
    help: 'Exceptions caught on the logging and metrics path (during: observe, batch_usage); the request itself was already answered.',
    labelNames: ['during'],
    registers: [registry],
  });
  const deprecatedCalls = new Counter({
    name: 'tollgate_deprecated_model_requests_total',
    help: 'Requests for catalogue models with a shutdown date still ahead, by key id and model: who still has to move to the successor.',
    labelNames: ['key', 'model'],
    registers: [registry],
  });
  const usage = createUsageMetrics({ registry, pricesOf: options.pricesOf ?? (() => undefined) });
  const remaining = createRemainingGauge({ registry, keyLabel, requestsLimitOf: options.requestsLimitOf ?? (() => 'rpm') });

  // Cells and observers are looked up once per label set, never hashed per request.
  const requestCells = new Map<string, Cell>();
  const errorCells = new Map<string, Cell>();
  const endpointObservers = new Map<string, EndpointObservers>();
  const countRequest = (key: string, model: string, endpoint: string, statusClass: string, cache: string): void => {
    const id = `${key}\u0000${model}\u0000${endpoint}\u0000${statusClass}\u0000${cache}`;
    let cell = requestCells.get(id);
    if (!cell) requestCells.set(id, (cell = requests.cell({ key, model, endpoint, status_class: statusClass, cache })));
    cell.value++;
  };
  const countUpstreamError = (status: string): void => {
    let cell = errorCells.get(status);
    if (!cell) errorCells.set(status, (cell = upstreamErrors.cell({ status })));
    cell.value++;
  };
  const observersOf = (endpoint: string): EndpointObservers => {
    let observers = endpointObservers.get(endpoint);
    if (!observers) endpointObservers.set(endpoint, (observers = durations(endpoint)));
    return observers;
  };

  return {
    registry,
    inflight,
    redisErrors,
    cacheErrors,
    internalErrors,
    usage,
    remaining,
    keyLabel,
    countRateLimited: (keyId, model, limit) => rateLimited.inc({ key: keyLabel(keyId), model, limit }),
    recordRequest(state, endpoint, status, totalMs, upstreamMs) {
      const key = state.caller ? keyLabel(state.caller.id) : 'anonymous';
      countRequest(key, state.modelLabel, endpoint, statusClassOf(status), state.cache);
      const observers = observersOf(endpoint);
      observers.total.observe(totalMs / 1000);
      if (upstreamMs !== undefined) {
        observers.upstream.observe(upstreamMs / 1000);
        observers.overhead.observe(Math.max(0, totalMs - upstreamMs) / 1000);
      }
      // Time to first token of answers, not of upstream errors.
      if (state.upstreamFirstByte !== undefined && (state.upstreamStatus ?? 0) < 400) observers.firstByte.observe((state.upstreamFirstByte - state.arrivedAt) / 1000);
      const failure = upstreamFailure(state, status);
      if (failure !== undefined) countUpstreamError(failure);
      if (state.caller && state.rateLimitHeaders) remaining.admitted(state.caller, state.modelLabel, state.rateLimitHeaders);
      if (state.deprecated) deprecatedCalls.inc({ key, model: state.deprecated.model });
      if (state.cacheSavedNano !== undefined) usage.countSaved(key, state.modelLabel, state.cacheSavedNano);
      if (!state.usage || !state.usageSource) return undefined;
      return usage.count(key, state.modelLabel, state.usage, state.usageSource);
    },
  };
}

function statusClassOf(status: number): string {
  return status < 200 ? '1xx' : status < 300 ? '2xx' : status < 400 ? '3xx' : status < 500 ? '4xx' : '5xx';
}

/** The `status` label of an upstream failure, if the request met one. */
function upstreamFailure(state: ObservedRequest, status: number): string | undefined {
  if (state.upstreamStatus !== undefined) {
    if (state.upstreamStatus >= 500) return String(state.upstreamStatus);
    return state.streamEnd === 'upstream_error' ? 'stream_cut' : undefined;
  }
  // Sent, but no answer came: the gateway said why with 502 (unreachable) or 504 (timeout).
  if (state.upstreamStart === undefined || state.clientGone) return undefined;
  return status === 502 ? 'unreachable' : status === 504 ? 'timeout' : undefined;
}

/** The gauge reads a plain number when scraped; the hot path only adds and subtracts. */
function inflightGauge(registry: Registry): Metrics['inflight'] {
  let inflight = 0;
  new Gauge({
    name: 'tollgate_inflight_requests',
    help: 'Requests being served now.',
    registers: [registry],
    collect() {
      this.set(inflight);
    },
  });
  return { inc: () => void inflight++, dec: () => void inflight-- };
}

/** The four latency histograms by endpoint; returns the observers of one endpoint. */
function durationHistograms(registry: Registry): (endpoint: string) => EndpointObservers {
  const histogram = (name: string, help: string, buckets: number[]) => new FastHistogram({ name, help, labelNames: ['endpoint'], buckets, registry });
  const total = histogram('tollgate_request_duration_seconds', 'Time from request arrival to the last byte of the response (streams included).', LATENCY_BUCKETS);
  const upstream = histogram('tollgate_upstream_duration_seconds', 'Time from sending the upstream request to the end of its response body.', LATENCY_BUCKETS);
  const overhead = histogram('tollgate_overhead_seconds', "The gateway's own share of a request: total time minus upstream time.", OVERHEAD_BUCKETS);
  const firstByte = histogram(
    'tollgate_time_to_first_token_seconds',
    "Time from request arrival to the first byte of the upstream's answer body (the first event of a stream).",
    LATENCY_BUCKETS,
  );
  return (endpoint) => ({
    total: total.child({ endpoint }),
    upstream: upstream.child({ endpoint }),
    overhead: overhead.child({ endpoint }),
    firstByte: firstByte.child({ endpoint }),
  });
}
