import type { Catalogue } from '../config/catalogue.js';
import type { Config, UpstreamEntry } from '../config/schema.js';
import type { CeilingFigures, Ceilings } from '../limits/ceiling.js';
import type { PoolObserver } from './calibrate.js';
import { createUpstream } from './client.js';
import type { PoolMember } from './member.js';
import { createUpstreamPool, type UpstreamPool } from './pool.js';

/**
 * The pool of the config: `upstreams:` entries, or the single `upstream:` form (its `url`, or one
 * member per `targets` entry) as members carrying the gateway's own credential. The first member
 * is the default: requests without a model go there, and `limits.organization` is its ceiling
 * unless it names its own.
 */

export interface PoolSetup {
  /** Where the single form points when `upstream.url` is unset (TOLLGATE_UPSTREAM_URL). */
  readonly defaultUrl: string;
  /** The gateway's own credential (OPENAI_API_KEY), for members that name none. */
  readonly apiKey: string | undefined;
  readonly ceilings: Ceilings | undefined;
  /** The pool's metrics, given the upstream ids. */
  readonly observer: ((upstreams: readonly string[]) => PoolObserver) | undefined;
}

type CeilingSpec = NonNullable<UpstreamEntry['ceiling']>;

/** The ceiling's figures per model: the tier's, then the entry's, then the model's own. */
function ceilingOf(spec: CeilingSpec | undefined, catalogue: Catalogue): ((model: string) => CeilingFigures | undefined) | undefined {
  if (!spec) return undefined;
  const tier = 'tier' in spec && spec.tier ? catalogue.tierLimits(spec.tier) : { rpm: null, tpm: null };
  const own = spec as { rpm?: number | null; tpm?: number | null };
  const top: CeilingFigures = { rpm: own.rpm !== undefined ? own.rpm : tier.rpm, tpm: own.tpm !== undefined ? own.tpm : tier.tpm };
  const perModel = new Map<string, CeilingFigures>();
  for (const [name, figures] of Object.entries(spec.models)) {
    perModel.set(catalogue.resolve(name)?.name ?? name, { rpm: figures.rpm !== undefined ? figures.rpm : top.rpm, tpm: figures.tpm !== undefined ? figures.tpm : top.tpm });
  }
  return (model) => {
    const figures = perModel.get(model) ?? top;
    return figures.rpm === null && figures.tpm === null ? undefined : figures;
  };
}

function modelSet(names: readonly string[] | undefined, catalogue: Catalogue): ReadonlySet<string> | undefined {
  return names && new Set(names.map((name) => catalogue.resolve(name)?.name ?? name));
}

function deploymentsOf(entry: UpstreamEntry, catalogue: Catalogue): Record<string, string> | undefined {
  if (!entry.deployments) return undefined;
  const out: Record<string, string> = {};
  for (const [model, deployment] of Object.entries(entry.deployments)) out[catalogue.resolve(model)?.name ?? model] = deployment;
  return out;
}

function legacyEntries(config: Config, defaultUrl: string): UpstreamEntry[] {
  const common = { organization: config.upstream.organization, project: config.upstream.project, kind: 'openai' as const, api_version: '2024-10-21', weight: 1 };
  if (config.upstream.targets.length === 0) return [{ ...common, id: 'default', url: config.upstream.url ?? defaultUrl }];
  // Ids name targets by position, not URL: they appear in x-tollgate-upstream, logs and metrics.
  return config.upstream.targets.map((target, index) => ({ ...common, id: `target-${index}`, url: target.url }));
}

export function createConfiguredPool(config: Config, catalogue: Catalogue, setup: PoolSetup): UpstreamPool {
  const entries = config.upstreams.length > 0 ? config.upstreams : legacyEntries(config, setup.defaultUrl);
  const organization = config.limits.organization;
  const owner = organization?.name ?? 'gateway';
  const members = entries.map((entry, index): PoolMember => {
    const ceilingSpec = entry.ceiling ?? (index === 0 && organization ? { tier: organization.tier, models: {} } : undefined);
    return {
      id: entry.id,
      kind: entry.kind,
      apiKey: entry.api_key ?? setup.apiKey,
      organization: entry.organization,
      project: entry.project,
      models: modelSet(entry.models, catalogue),
      deployments: deploymentsOf(entry, catalogue),
      apiVersion: entry.api_version,
      weight: entry.weight,
      owner,
      ceiling: ceilingOf(ceilingSpec, catalogue),
      upstream: createUpstream({
        baseUrl: entry.url,
        connections: entry.connections ?? config.upstream.connections,
        connectTimeoutMs: entry.connect_timeout_ms ?? config.upstream.connect_timeout_ms,
        headersTimeoutMs: entry.headers_timeout_ms ?? config.upstream.headers_timeout_ms,
        bodyTimeoutMs: entry.body_timeout_ms ?? config.upstream.body_timeout_ms,
      }),
    };
  });
  const { retry, outlier_detection: outliers } = config;
  return createUpstreamPool({
    members,
    retry: { maxAttempts: retry.max_attempts, deadlineMs: retry.deadline_ms, baseBackoffMs: retry.base_backoff_ms, maxBackoffMs: retry.max_backoff_ms },
    ejection: {
      consecutiveFailures: outliers.consecutive_failures,
      baseEjectionMs: outliers.base_ejection_ms,
      maxEjectionMs: outliers.max_ejection_ms,
      failurePercentage: outliers.failure_percentage,
      failurePercentageRequestVolume: outliers.failure_percentage_request_volume,
      intervalMs: outliers.interval_ms,
    },
    balanceFactor: config.upstream.balance_factor,
    ceilings: setup.ceilings,
    observer: setup.observer?.(members.map((m) => m.id)),
  });
}
