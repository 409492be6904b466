import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Cost } from '../usage/cost.js';
import type { Usage } from '../usage/extract.js';

/** Realtime sessions' own metrics (tokens and cost also go to the gateway's usual counters). */
export interface RealtimeMetrics {
  opened(): void;
  closed(durationMs: number): void;
  /** `direction`: `client_to_upstream` or `upstream_to_client`. */
  relayed(direction: Direction, bytes: number): void;
  refused(reason: string): void;
  paused(direction: Direction): void;
  /** Tokens and nano-dollars of one response, by modality. */
  response(model: string, usage: Usage, cost: Cost): void;
}

export type Direction = 'client_to_upstream' | 'upstream_to_client';

/** `buffered`: the bytes the open sessions hold in the gateway now (read at each scrape). */
export function createRealtimeMetrics(registry: Registry, buffered: () => number): RealtimeMetrics {
  const active = new Gauge({ name: 'tollgate_realtime_sessions_active', help: 'Realtime WebSocket sessions open now.', registers: [registry] });
  new Gauge({
    name: 'tollgate_realtime_buffered_bytes',
    help: 'Bytes the open realtime sessions hold in the gateway: written but not yet taken by either socket, and client events queued behind an admission. Bounded by realtime.max_buffered_bytes per side and session (plus a frame).',
    registers: [registry],
    collect() {
      this.set(buffered());
    },
  });
  const duration = new Histogram({
    name: 'tollgate_realtime_session_duration_seconds',
    help: 'Length of realtime sessions, from the upgrade to the close.',
    buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200],
    registers: [registry],
  });
  const frames = new Counter({ name: 'tollgate_realtime_frames_total', help: 'WebSocket frames relayed, by direction.', labelNames: ['direction'], registers: [registry] });
  const bytes = new Counter({ name: 'tollgate_realtime_bytes_total', help: 'WebSocket payload bytes relayed, by direction.', labelNames: ['direction'], registers: [registry] });
  const refusals = new Counter({
    name: 'tollgate_realtime_refused_total',
    help: 'Realtime events refused before reaching the upstream, by reason (tpm, rpm, rpd, budget, token_quota, model, invalid_event).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const pauses = new Counter({ name: 'tollgate_realtime_backpressure_pauses_total', help: 'Times one side was paused because the other had too much waiting to be sent, by the direction that was full.', labelNames: ['direction'], registers: [registry] });
  const tokens = new Counter({ name: 'tollgate_realtime_tokens_total', help: 'Realtime tokens by model, kind (input, cached_input, output) and modality (text, audio, image).', labelNames: ['model', 'kind', 'modality'], registers: [registry] });
  // Cost is summed in integer nano-dollars and exposed as dollars, so the figure stays exact.
  const nano = new Map<string, { labels: { model: string; kind: string }; value: number }>();
  new Counter({
    name: 'tollgate_realtime_cost_usd_total',
    help: 'Realtime cost in US dollars by model and kind (input, cached_input, output), at the catalogue prices by modality.',
    labelNames: ['model', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { labels, value } of nano.values()) this.inc(labels, value / 1e9);
    },
  });
  const addCost = (model: string, kind: string, value: number): void => {
    if (value === 0) return;
    const key = `${model}\u0000${kind}`;
    const found = nano.get(key);
    if (found) found.value += value;
    else nano.set(key, { labels: { model, kind }, value });
  };
  const addTokens = (model: string, kind: string, modality: string, value: number): void => {
    if (value > 0) tokens.inc({ model, kind, modality }, value);
  };
  return {
    opened: () => active.inc(),
    closed(durationMs) {
      active.dec();
      duration.observe(durationMs / 1000);
    },
    relayed(direction, n) {
      frames.inc({ direction });
      bytes.inc({ direction }, n);
    },
    refused: (reason) => refusals.inc({ reason }),
    paused: (direction) => pauses.inc({ direction }),
    response(model, usage, cost) {
      const t = usage.realtime;
      if (t) {
        addTokens(model, 'input', 'text', t.textIn - Math.min(t.cachedText, t.textIn));
        addTokens(model, 'input', 'audio', t.audioIn - Math.min(t.cachedAudio, t.audioIn));
        addTokens(model, 'input', 'image', t.imageIn - Math.min(t.cachedImage, t.imageIn));
        addTokens(model, 'cached_input', 'text', Math.min(t.cachedText, t.textIn));
        addTokens(model, 'cached_input', 'audio', Math.min(t.cachedAudio, t.audioIn));
        addTokens(model, 'cached_input', 'image', Math.min(t.cachedImage, t.imageIn));
        addTokens(model, 'output', 'text', t.textOut);
        addTokens(model, 'output', 'audio', t.audioOut);
      }
      addCost(model, 'input', cost.input);
      addCost(model, 'cached_input', cost.cachedInput);
      addCost(model, 'output', cost.output);
    },
  };
}
