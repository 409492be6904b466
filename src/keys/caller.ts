import { cachePolicy, type Caller, type CallerQuota } from '../auth/keys.js';
import type { Catalogue, ModelInfo } from '../config/catalogue.js';
import type { KeyLimits, KeyPolicy } from '../config/key-policy.js';
import { ModelNotAllowedError } from '../errors/errors.js';
import type { ShareClaim } from '../limits/store.js';

/** The part of a key's policy that matters per request (config entry and stored record alike). */
export type PolicyFields = Pick<KeyPolicy, 'tier' | 'limits' | 'max_wait_ms' | 'models' | 'budget_usd' | 'token_quota' | 'expires_at' | 'disabled' | 'cache' | 'on_shutdown' | 'fair_share'>;

/** US dollars as integer nano-dollars. */
export function usdToNano(usd: number): number {
  return Math.round(usd * 1e9);
}

/** A model name as the key store keeps it: the catalogue's canonical name (aliases fold into it). */
export function canonicalModel(name: string, catalogue: Catalogue | undefined): string {
  return catalogue?.resolve(name)?.name ?? name;
}

/**
 * Build the Caller of a key from its policy. Built once per key version and then shared by every
 * request of the key (the limiter caches its figures per Caller object).
 */
export function callerFromPolicy(id: string, policy: PolicyFields, catalogue?: Catalogue): Caller {
  return {
    id,
    tier: policy.tier,
    limits: canonicalLimits(policy.limits, catalogue),
    maxWaitMs: policy.max_wait_ms,
    models: policy.models && new Set(policy.models.map((m) => canonicalModel(m, catalogue))),
    quota: quotaOf(policy),
    expiresAtMs: policy.expires_at === undefined ? undefined : Date.parse(policy.expires_at),
    disabled: policy.disabled === true ? true : undefined,
    cache: cachePolicy(id, policy.cache),
    onShutdown: policy.on_shutdown,
    share: shareClaim(id, policy.fair_share),
  };
}

/** Whose share of a contended ceiling the key's requests count against: its group's, or its own. */
export function shareClaim(id: string, fair: KeyPolicy['fair_share']): ShareClaim {
  return { entity: fair?.group !== undefined ? `group:${fair.group}` : `key:${id}`, weight: fair?.weight ?? 1, priority: fair?.priority ?? 0 };
}

function canonicalLimits(limits: KeyLimits | undefined, catalogue: Catalogue | undefined): KeyLimits | undefined {
  if (!limits?.models) return limits;
  const models: NonNullable<KeyLimits['models']> = {};
  for (const [name, figures] of Object.entries(limits.models)) models[canonicalModel(name, catalogue)] = figures;
  return { ...limits, models };
}

function quotaOf(policy: PolicyFields): CallerQuota | undefined {
  const budget = policy.budget_usd;
  const tokens = policy.token_quota;
  const nano = (usd: number | null | undefined) => (usd === null || usd === undefined ? undefined : usdToNano(usd));
  const quota: CallerQuota = {
    budgetNano: { daily: nano(budget?.daily), monthly: nano(budget?.monthly), total: nano(budget?.total) },
    tokens: { daily: tokens?.daily ?? undefined, monthly: tokens?.monthly ?? undefined },
  };
  const any = [quota.budgetNano.daily, quota.budgetNano.monthly, quota.budgetNano.total, quota.tokens.daily, quota.tokens.monthly].some(
    (v) => v !== undefined,
  );
  return any ? quota : undefined;
}

/**
 * Refuse a model outside the key's allow-list (which names catalogue models by their canonical
 * name, so an alias is allowed with its model). A request that names no model is not checked.
 */
export function checkModelAllowed(caller: Caller, requested: string | undefined, model: ModelInfo | undefined): void {
  if (caller.models === undefined || requested === undefined) return;
  if (!caller.models.has(model?.name ?? requested)) throw new ModelNotAllowedError(caller.id, requested);
}
