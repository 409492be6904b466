import type { Registry } from 'prom-client';
import type { Catalogue } from '../config/catalogue.js';
import type { Panels } from './panels-shape.js';

export type { Panels };

/**
 * The admin overview's live panels, read from this instance's in-process metrics (the same
 * counters /metrics exposes) and its upstream pool: nothing is added to the request path. Every
 * figure is this instance's since it started; the cluster-wide figures (spend, requests, cached
 * tokens per key) come from the usage hashes in Redis (overview.ts).
 */
export interface PanelDeps {
  readonly registry: Registry;
  readonly catalogue: Catalogue;
  /** Each upstream's health on this instance (healthy, ejected, probing). */
  readonly upstreamHealth: () => Record<string, string>;
  /** config.metrics.enabled: when false, requests are not counted (429s still are). */
  readonly metricsEnabled: boolean;
  /** config.metrics.per_key_labels: when false, every series is labelled `key="all"`. */
  readonly perKeyLabels: boolean;
  readonly startedAt: number;
}

interface Sample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

async function samples(registry: Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  const got = await metric.get();
  return got.values.map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

/** Dollars exposed as nano-dollars / 1e9 back to integer nano-dollars: sums stay exact. */
const nano = (usd: number): number => Math.round(usd * 1e9);

function sumBy(list: readonly Sample[], label: string, toUnits: (v: number) => number = (v) => v): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of list) {
    const key = String(s.labels[label] ?? '');
    out.set(key, (out.get(key) ?? 0) + toUnits(s.value));
  }
  return out;
}


export interface RetiringModel {
  readonly model: string;
  readonly shutdown_date: string | null;
  readonly successor: string | null;
  /** This instance's requests since it started. */
  readonly requests: number;
}

/**
 * The models with a shutdown date ahead that one key called on this instance (its self-service
 * warning). Empty when metrics carry no key ids (metrics.per_key_labels: false).
 */
export async function retiringModelsOf(deps: PanelDeps, keyId: string): Promise<RetiringModel[]> {
  if (!deps.perKeyLabels) return [];
  const deprecated = await samples(deps.registry, 'tollgate_deprecated_model_requests_total');
  return deprecated
    .filter((s) => s.value > 0 && s.labels.key === keyId)
    .map((s) => {
      const model = String(s.labels.model);
      const retirement = deps.catalogue.resolve(model)?.retirement;
      return { model, shutdown_date: retirement?.shutdownDate ?? null, successor: retirement?.successor ?? null, requests: s.value };
    });
}

export async function panels(deps: PanelDeps): Promise<Panels> {
  const { registry } = deps;
  const [cost, tokens, limited, refusals, saved, requests, ejections, remaining, deprecated] = await Promise.all(
    [
      'tollgate_cost_usd_total',
      'tollgate_tokens_total',
      'tollgate_rate_limited_total',
      'tollgate_upstream_ceiling_refusals_total',
      'tollgate_saved_usd_total',
      'tollgate_requests_total',
      'tollgate_upstream_ejections_total',
      'tollgate_upstream_ceiling_remaining',
      'tollgate_deprecated_model_requests_total',
    ].map((name) => samples(registry, name)),
  ) as [Sample[], Sample[], Sample[], Sample[], Sample[], Sample[], Sample[], Sample[], Sample[]];

  const costByModel = sumBy(cost, 'model', nano);
  const tokenTypes = (type: string) => sumBy(tokens.filter((s) => s.labels.type === type), 'model');
  const [input, cached, output] = [tokenTypes('input'), tokenTypes('cached_input'), tokenTypes('output')];
  const models = new Set([...costByModel.keys(), ...input.keys(), ...cached.keys(), ...output.keys()]);
  const spendByModel = [...models]
    .map((model) => {
      const costNano = costByModel.get(model) ?? 0;
      const cachedTokens = cached.get(model) ?? 0;
      // tollgate_tokens_total's `input` is uncached input: the usage object's input is both.
      return { model, cost_nano: costNano, cost_usd: costNano / 1e9, input_tokens: (input.get(model) ?? 0) + cachedTokens, cached_tokens: cachedTokens, output_tokens: output.get(model) ?? 0 };
    })
    .filter((row) => row.cost_nano > 0 || row.input_tokens > 0 || row.output_tokens > 0)
    .sort((a, b) => b.cost_nano - a.cost_nano || a.model.localeCompare(b.model));

  const byLimit = sumBy(limited, 'limit');
  const byUpstream = sumBy(refusals, 'upstream');
  const savedBySource = sumBy(saved, 'source', nano);
  const hits = requests.filter((s) => s.labels.cache === 'hit').reduce((n, s) => n + s.value, 0);
  const ejected = sumBy(ejections, 'upstream');

  const health = deps.upstreamHealth();
  const upstreams = Object.entries(health).map(([id, state]) => ({
    id,
    state,
    ejections: ejected.get(id) ?? 0,
    ceiling: remaining
      .filter((s) => s.labels.upstream === id)
      .map((s) => ({ model: String(s.labels.model), limit: String(s.labels.limit), remaining: s.value }))
      .sort((a, b) => a.model.localeCompare(b.model) || a.limit.localeCompare(b.limit)),
  }));

  const retired = deprecated
    .filter((s) => s.value > 0)
    .map((s) => {
      const model = String(s.labels.model);
      const retirement = deps.catalogue.resolve(model)?.retirement;
      return { key: deps.perKeyLabels ? String(s.labels.key) : null, model, shutdown_date: retirement?.shutdownDate ?? null, successor: retirement?.successor ?? null, requests: s.value };
    })
    .sort((a, b) => b.requests - a.requests || (a.key ?? '').localeCompare(b.key ?? ''));

  return {
    object: 'console.panels',
    scope: 'instance',
    since: new Date(deps.startedAt).toISOString(),
    metrics_enabled: deps.metricsEnabled,
    per_key_labels: deps.perKeyLabels,
    spend_by_model: spendByModel,
    rate_limited: [...byLimit].filter(([, n]) => n > 0).map(([limit, count]) => ({ limit, count })).sort((a, b) => b.count - a.count || a.limit.localeCompare(b.limit)),
    ceiling_refusals: [...byUpstream].filter(([, n]) => n > 0).map(([upstream, count]) => ({ upstream, count })),
    cache_savings: [...savedBySource].filter(([, n]) => n > 0).map(([source, savedNano]) => ({ source, saved_nano: savedNano, saved_usd: savedNano / 1e9 })),
    response_cache_hits: hits,
    upstreams,
    retired_callers: retired,
  };
}
