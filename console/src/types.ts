/** The shapes the admin API and the console API answer with (see /admin/openapi.json). */

export interface Window {
  readonly window: string;
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly total_tokens: number;
  readonly cost_usd: number;
  readonly reserved_usd: number;
}
export interface Cap {
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly resets_at: string | null;
}
export interface UsageReport {
  readonly usage: { readonly today: Window; readonly month: Window; readonly total: Window };
  readonly budget_usd: Record<string, Cap>;
  readonly token_quota: Record<string, Cap>;
  readonly rate_limits: Record<string, Record<string, string>>;
}
export type Rates = { rpm?: number | null; rpd?: number | null; tpm?: number | null };
export interface Policy {
  tier: string;
  limits?: Rates & { batch_queue_tokens?: number | null; models?: Record<string, Rates> };
  max_wait_ms?: number;
  models?: string[];
  budget_usd?: { daily?: number | null; monthly?: number | null; total?: number | null };
  token_quota?: { daily?: number | null; monthly?: number | null };
  expires_at?: string;
  disabled?: boolean;
  cache?: { ttl_s?: number; max_entry_bytes?: number; group?: string };
  metadata?: { team?: string; owner?: string; description?: string };
}
export interface KeyView extends Policy {
  readonly id: string;
  readonly source: 'config' | 'api';
  readonly status: 'active' | 'disabled' | 'expired' | 'revoked';
  readonly key_hint: string | null;
  readonly created_at: string | null;
  readonly updated_at: string | null;
  readonly revoked_at: string | null;
}
export interface KeyRow {
  readonly key: KeyView;
  readonly usage: UsageReport;
  readonly budget_share: number | null;
}
export interface Totals {
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly cost_usd: number;
}
export interface Overview {
  readonly today: Totals;
  readonly month: Totals;
  readonly near_budget_share: number;
  readonly keys: KeyRow[];
}
export interface DayUsage {
  readonly day: string;
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly cost_usd: number;
}
export interface HourUsage {
  /** The hour's start, ISO 8601 UTC. */
  readonly hour: string;
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly cost_usd: number;
  readonly cost_nano: number;
}
export interface HourlyList {
  readonly id: string;
  /** How many hours back the buckets are kept (0: not kept). */
  readonly hours_kept: number;
  readonly data: HourUsage[];
}
/** The overview's live panels: this instance's metrics since it started (the server's own type). */
export type { Panels } from '../../src/console/panels-shape.js';
export interface SessionInfo {
  readonly signed_in: boolean;
  readonly role: 'admin' | 'key' | null;
  readonly key_id: string | null;
  readonly csrf_token: string | null;
  readonly sign_in_with?: string[];
}
export interface SelfReport extends UsageReport {
  readonly id: string;
  readonly tier: string;
  readonly status: string;
  readonly limits: Record<string, number | null>;
  readonly models: string[] | null;
  readonly expires_at: string | null;
  readonly key_hint: string | null;
  /** Models with a shutdown date ahead this key called (this instance, since it started). */
  readonly retiring_models?: { model: string; shutdown_date: string | null; successor: string | null; requests: number }[];
}
