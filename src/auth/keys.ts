import { createHash } from 'node:crypto';
import type { TierName } from '../config/defaults.js';
import type { KeyLimits } from '../config/key-policy.js';
import type { ShareClaim } from '../limits/store.js';

/** Who is calling: what every later stage needs to know about the client key. Never the secret. */
export interface Caller {
  readonly id: string;
  readonly tier: TierName;
  /** The key's overrides of its tier's figures (per model under `models`, canonical names). */
  readonly limits: KeyLimits | undefined;
  /** Wait up to this long for a bucket to refill instead of answering 429. */
  readonly maxWaitMs: number | undefined;
  /** The models the key may use (catalogue names, or names as given for models outside it); undefined: all. */
  readonly models?: ReadonlySet<string> | undefined;
  /** Budgets and token quotas; undefined when the key has none (its usage is then counted in process). */
  readonly quota?: CallerQuota | undefined;
  /** Refused from this instant on (ms since the epoch). */
  readonly expiresAtMs?: number | undefined;
  readonly disabled?: boolean | undefined;
  /** The key's response cache policy; undefined: the cache is off for this key. */
  readonly cache?: CachePolicy | undefined;
  /** Past a catalogue model's shutdown date: overrides the model's own `on_shutdown`. */
  readonly onShutdown?: 'reject' | 'route_to_successor' | undefined;
  /** Whose share of a contended upstream ceiling the key's requests count against (limits.fair_share). */
  readonly share?: ShareClaim | undefined;
}

/** A key's response cache, resolved once from its policy. */
export interface CachePolicy {
  readonly ttlMs: number;
  readonly maxEntryBytes: number;
  /** Whose entries these are: `key:<id>`, or `group:<name>` for a shared group. Never the secret. */
  readonly scope: string;
}

/** A key's policy's `cache` field, as the config file and the admin API take it. */
export interface CachePolicyFields {
  readonly ttl_s: number;
  readonly max_entry_bytes: number;
  readonly group?: string | undefined;
}

export function cachePolicy(id: string, cache: CachePolicyFields | undefined): CachePolicy | undefined {
  if (!cache) return undefined;
  return { ttlMs: cache.ttl_s * 1000, maxEntryBytes: cache.max_entry_bytes, scope: cacheScope(id, cache) };
}

/** Whose response cache entries a key's are: its group's when it names one, else its own (by id, never the secret). */
export function cacheScope(id: string, cache: { readonly group?: string | undefined } | undefined): string {
  const group = cache?.group;
  return group !== undefined ? `group:${group}` : `key:${id}`;
}

/** A key's caps in integer units: nano-dollars per UTC day / month / ever, tokens per UTC day / month. */
export interface CallerQuota {
  readonly budgetNano: { readonly daily?: number | undefined; readonly monthly?: number | undefined; readonly total?: number | undefined };
  readonly tokens: { readonly daily?: number | undefined; readonly monthly?: number | undefined };
}

export function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** The secret of `Authorization: Bearer <secret>`, or undefined when none was presented. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*Bearer\s+(.*?)\s*$/i.exec(header);
  const token = match?.[1];
  return token === undefined || token.length === 0 ? undefined : token;
}
