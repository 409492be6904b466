import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Metric definitions on an injected Registry (tests build as many as they like). Labels are
 * bounded: `key` is a key id, `model` a catalogue name or `other`, `endpoint` a route template.
 */
export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'key' | 'model' | 'endpoint' | 'status_class'>;
  readonly requestDuration: Histogram<'endpoint'>;
  readonly upstreamDuration: Histogram<'endpoint'>;
  readonly overhead: Histogram<'endpoint'>;
  /** Requests being served now: a plain counter, read by the gauge only when scraped. */
  readonly inflight: { inc(): void; dec(): void };
  readonly upstreamErrors: Counter<'status'>;
  readonly rateLimited: Counter<'key' | 'model' | 'limit'>;
  readonly redisErrors: Counter;
  /** Count one finished request and observe its durations (milliseconds in, seconds out). */
  recordRequest(key: string, model: string, endpoint: string, status: number, totalMs: number, upstreamMs: number | undefined): void;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export function createMetrics(registry: Registry = new Registry(), options: { defaultMetrics?: boolean } = {}): Metrics {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'tollgate_' });
  let inflight = 0;
  new Gauge({
    name: 'tollgate_inflight_requests',
    help: 'Requests being served now.',
    registers: [registry],
    collect() {
      this.set(inflight);
    },
  });
  const metrics = {
    registry,
    requests: new Counter({
      name: 'tollgate_requests_total',
      help: 'Requests answered, by key id, model, endpoint template and status class (2xx, 4xx, 5xx).',
      labelNames: ['key', 'model', 'endpoint', 'status_class'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'tollgate_request_duration_seconds',
      help: 'Time from request arrival to the last byte of the response (streams included).',
      labelNames: ['endpoint'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'tollgate_upstream_duration_seconds',
      help: 'Time from sending the upstream request to the end of its response body.',
      labelNames: ['endpoint'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    overhead: new Histogram({
      name: 'tollgate_overhead_seconds',
      help: "The gateway's own share of a request: total time minus upstream time.",
      labelNames: ['endpoint'],
      buckets: OVERHEAD_BUCKETS,
      registers: [registry],
    }),
    inflight: { inc: () => void inflight++, dec: () => void inflight-- },
    upstreamErrors: new Counter({
      name: 'tollgate_upstream_errors_total',
      help: 'Upstream failures: an upstream status >= 500, or `unreachable` / `timeout` / `stream_cut`.',
      labelNames: ['status'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'tollgate_rate_limited_total',
      help: 'Requests refused with 429 by the limiter, by key id, model and the limit that refused (rpm, rpd, tpm).',
      labelNames: ['key', 'model', 'limit'],
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'tollgate_redis_errors_total',
      help: 'Failed or timed-out Redis calls of the limiter.',
      registers: [registry],
    }),
  };
  // Labelled children are looked up once per label set, not hashed on every request.
  const requestChildren = new Map<string, { inc(): void }>();
  const endpointChildren = new Map<string, { total: Observer; upstream: Observer; overhead: Observer }>();
  return {
    ...metrics,
    recordRequest(key, model, endpoint, status, totalMs, upstreamMs) {
      const statusClass = status < 200 ? '1xx' : status < 300 ? '2xx' : status < 400 ? '3xx' : status < 500 ? '4xx' : '5xx';
      const id = `${key}\u0000${model}\u0000${endpoint}\u0000${statusClass}`;
      let counter = requestChildren.get(id);
      if (!counter) {
        counter = metrics.requests.labels({ key, model, endpoint, status_class: statusClass });
        requestChildren.set(id, counter);
      }
      counter.inc();
      let observers = endpointChildren.get(endpoint);
      if (!observers) {
        observers = {
          total: metrics.requestDuration.labels({ endpoint }),
          upstream: metrics.upstreamDuration.labels({ endpoint }),
          overhead: metrics.overhead.labels({ endpoint }),
        };
        endpointChildren.set(endpoint, observers);
      }
      observers.total.observe(totalMs / 1000);
      if (upstreamMs !== undefined) {
        observers.upstream.observe(upstreamMs / 1000);
        observers.overhead.observe(Math.max(0, totalMs - upstreamMs) / 1000);
      }
    },
  };
}

interface Observer {
  observe(value: number): void;
}
