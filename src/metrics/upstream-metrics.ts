import { Counter, Gauge, type Registry } from 'prom-client';
import type { PoolObserver } from '../upstream/calibrate.js';
import { FastHistogram, type Observer } from './histogram.js';
import { Tally, type Cell } from './tally.js';

/**
 * The upstream pool's metrics, per upstream id (bounded: the configured pool). Outcomes are
 * bounded too: ok, connect_error, error, 429, 500, 502, 503, 504, other 4xx / 5xx.
 */

const HEAD_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const KNOWN = new Set(['ok', 'connect_error', 'error', '429', '500', '502', '503', '504']);

function outcomeLabel(outcome: string): string {
  if (KNOWN.has(outcome)) return outcome;
  return outcome.startsWith('5') ? '5xx' : '4xx';
}

export function createUpstreamMetrics(registry: Registry, upstreams: readonly string[], perKey = true): PoolObserver {
  // Counted on every request: a Tally's cells (one per upstream and outcome, both bounded), not
  // prom-client's per-call label hashing.
  const attempts = new Tally({
    name: 'tollgate_upstream_attempts_total',
    help: 'Attempts sent to each upstream, by how they ended: ok, an error status (429, 500, 502, 503, 504, 4xx, 5xx), connect_error (never received), error (reset, timeout).',
    labelNames: ['upstream', 'outcome'],
    registry,
  });
  const attemptCells = new Map<string, Cell>();
  const attemptCell = (upstream: string, outcome: string): Cell => {
    const id = `${upstream}\u0000${outcome}`;
    let cell = attemptCells.get(id);
    if (!cell) attemptCells.set(id, (cell = attempts.cell({ upstream, outcome })));
    return cell;
  };
  const retries = new Counter({ name: 'tollgate_upstream_retries_total', help: 'Attempts repeated on the same upstream after a backoff.', labelNames: ['upstream'], registers: [registry] });
  const failovers = new Counter({ name: 'tollgate_upstream_failovers_total', help: 'Attempts moved from one upstream to another.', labelNames: ['from', 'to'], registers: [registry] });
  const refusals = new Counter({ name: 'tollgate_upstream_ceiling_refusals_total', help: "Times an upstream's ceiling had no room for a request.", labelNames: ['upstream'], registers: [registry] });
  const ejections = new Counter({ name: 'tollgate_upstream_ejections_total', help: 'Ejections of an upstream by outlier detection (this instance), failed probes included.', labelNames: ['upstream'], registers: [registry] });
  const healthy = new Gauge({ name: 'tollgate_upstream_healthy', help: '1 while an upstream takes traffic on this instance, 0 while ejected.', labelNames: ['upstream'], registers: [registry] });
  const remaining = new Gauge({
    name: 'tollgate_upstream_ceiling_remaining',
    help: "What an upstream's ceiling had left after the latest admission, by model and limit (requests, tokens).",
    labelNames: ['upstream', 'model', 'limit'],
    registers: [registry],
  });
  const drift = new Gauge({
    name: 'tollgate_upstream_calibration_drift',
    help: "Tollgate's count of an upstream's remaining headroom minus the provider's own x-ratelimit-remaining-* (positive: the provider had less; the ceiling was tightened by it).",
    labelNames: ['upstream', 'model', 'limit'],
    registers: [registry],
  });
  const shared = new Counter({
    name: 'tollgate_fair_share_admitted_tokens_total',
    help: 'Tokens reserved by admissions on a shared ceiling (limits.fair_share), by upstream, entity (key:<id> or group:<name>) and whether within the entity\'s own share or borrowed from idle shares.',
    labelNames: ['upstream', 'entity', 'share'],
    registers: [registry],
  });
  const latency = new FastHistogram({
    name: 'tollgate_upstream_attempt_seconds',
    help: "Time from sending an attempt to its answer's head (or its failure), by upstream.",
    labelNames: ['upstream'],
    buckets: HEAD_BUCKETS,
    registry,
  });
  const observers = new Map<string, Observer>();
  for (const id of upstreams) {
    healthy.set({ upstream: id }, 1);
    observers.set(id, latency.child({ upstream: id }));
  }
  return {
    attempted(upstream, outcome, seconds) {
      attemptCell(upstream, outcomeLabel(outcome)).value++;
      observers.get(upstream)?.observe(seconds);
    },
    retried: (upstream) => retries.inc({ upstream }),
    failedOver: (from, to) => failovers.inc({ from, to }),
    ceilingRefused: (upstream) => refusals.inc({ upstream }),
    ejected: (upstream) => ejections.inc({ upstream }),
    healthChanged: (upstream, up) => healthy.set({ upstream }, up ? 1 : 0),
    ceilingRemaining: (upstream, model, limit, value) => remaining.set({ upstream, model, limit }, value),
    drift: (upstream, model, limit, value) => drift.set({ upstream, model, limit }, value),
    shareAdmitted: (upstream, entity, tokens, borrowed) => shared.inc({ upstream, entity: perKey ? entity : 'all', share: borrowed ? 'borrowed' : 'within' }, tokens),
  };
}
