/**
 * What `GET /console/api/overview/panels` answers: the shape the server builds (panels.ts) and the
 * console's pages read (console/src/types.ts re-exports it). Types only, no imports: the console's
 * own build checks it without the server's dependencies.
 */
export interface Panels {
  readonly object: 'console.panels';
  readonly scope: 'instance';
  readonly since: string;
  readonly metrics_enabled: boolean;
  readonly spend_by_model: { model: string; cost_nano: number; cost_usd: number; input_tokens: number; cached_tokens: number; output_tokens: number }[];
  readonly rate_limited: { limit: string; count: number }[];
  readonly ceiling_refusals: { upstream: string; count: number }[];
  readonly cache_savings: { source: string; saved_nano: number; saved_usd: number }[];
  readonly response_cache_hits: number;
  readonly upstreams: { id: string; state: string; ejections: number; ceiling: { model: string; limit: string; remaining: number }[] }[];
  readonly per_key_labels: boolean;
  /** `key` null: metrics carry no key ids (every key's calls together). */
  readonly retired_callers: { key: string | null; model: string; shutdown_date: string | null; successor: string | null; requests: number }[];
}
