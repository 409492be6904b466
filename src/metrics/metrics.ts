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
  readonly inflight: Gauge;
  readonly upstreamErrors: Counter<'status'>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export function createMetrics(registry: Registry = new Registry(), options: { defaultMetrics?: boolean } = {}): Metrics {
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'tollgate_' });
  return {
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
    inflight: new Gauge({ name: 'tollgate_inflight_requests', help: 'Requests being served now.', registers: [registry] }),
    upstreamErrors: new Counter({
      name: 'tollgate_upstream_errors_total',
      help: 'Upstream failures: an upstream status >= 500, or `unreachable` / `timeout` / `stream_cut`.',
      labelNames: ['status'],
      registers: [registry],
    }),
  };
}
