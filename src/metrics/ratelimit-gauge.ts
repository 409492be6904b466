import { performance } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';
import type { Caller } from '../auth/keys.js';

type Headers = Readonly<Record<string, string>>;

/** Which bucket the `-requests` headers describe: RPM, or RPD for a key without an RPM limit. */
export type RequestsLimit = 'rpm' | 'rpd';

/**
 * `tollgate_ratelimit_remaining{key,model,limit}`: what a key had left in each bucket, from the
 * rate-limit headers of its last admission, refilled to the time of the scrape at the bucket's
 * rate (limit per window). The hot path keeps a reference to the headers the limiter made anyway;
 * they are read only when scraped. Other instances' admissions since then are not seen, so this
 * is an upper bound between two requests of the key, exact at each admission.
 */
export interface RemainingGauge {
  admitted(caller: Caller, model: string, headers: Headers): void;
}

export interface RemainingGaugeOptions {
  readonly registry: Registry;
  /** The key's metric label (`all` when per-key labels are off: the gauge then shows the lowest key). */
  readonly keyLabel: (keyId: string) => string;
  readonly requestsLimitOf: (caller: Caller) => RequestsLimit;
}

interface Entry {
  readonly key: string;
  readonly model: string;
  readonly requests: RequestsLimit;
  headers: Headers;
  at: number;
}

const WINDOW_MS: Record<RequestsLimit | 'tpm', number> = { rpm: 60_000, rpd: 86_400_000, tpm: 60_000 };

export function createRemainingGauge(options: RemainingGaugeOptions): RemainingGauge {
  const entries = new Map<string, Map<string, Entry>>();
  new Gauge({
    name: 'tollgate_ratelimit_remaining',
    help: "What each key has left per model and limit (rpm or rpd, tpm), from its last admission, refilled to now at the bucket's rate. Without per-key labels: the lowest key.",
    labelNames: ['key', 'model', 'limit'],
    registers: [options.registry],
    collect() {
      this.reset();
      const lowest = new Map<string, { labels: { key: string; model: string; limit: string }; value: number }>();
      const now = performance.now();
      for (const byModel of entries.values()) {
        for (const entry of byModel.values()) {
          for (const [name, limit] of [['requests', entry.requests], ['tokens', 'tpm']] as const) {
            const value = remainingNow(entry.headers, name, WINDOW_MS[limit], now - entry.at);
            if (value === undefined) continue;
            const id = `${entry.key}\u0000${entry.model}\u0000${limit}`;
            const seen = lowest.get(id);
            if (!seen) lowest.set(id, { labels: { key: entry.key, model: entry.model, limit }, value });
            else if (value < seen.value) seen.value = value;
          }
        }
      }
      for (const { labels, value } of lowest.values()) this.set(labels, value);
    },
  });

  return {
    admitted(caller, model, headers) {
      let byModel = entries.get(caller.id);
      if (!byModel) entries.set(caller.id, (byModel = new Map()));
      const entry = byModel.get(model);
      if (entry) {
        entry.headers = headers;
        entry.at = performance.now();
        return;
      }
      byModel.set(model, { key: options.keyLabel(caller.id), model, requests: options.requestsLimitOf(caller), headers, at: performance.now() });
    },
  };
}

/** The bucket's remaining units from the headers, plus what refilled in `elapsedMs`, capped at the limit. */
function remainingNow(headers: Headers, name: 'requests' | 'tokens', windowMs: number, elapsedMs: number): number | undefined {
  const limit = Number(headers[`x-ratelimit-limit-${name}`]);
  const remaining = Number(headers[`x-ratelimit-remaining-${name}`]);
  if (!Number.isFinite(limit) || !Number.isFinite(remaining)) return undefined;
  return Math.min(limit, remaining + Math.floor((elapsedMs * limit) / windowMs));
}
