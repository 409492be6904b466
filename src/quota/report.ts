import type { Caller } from '../auth/keys.js';
import type { Catalogue } from '../config/catalogue.js';
import type { Limiter } from '../limits/limiter.js';
import type { LimiterStore } from '../limits/store.js';
import { ServiceUnavailableError } from '../errors/errors.js';
import { nanoToUsd } from '../usage/cost.js';
import { FIELDS, usageKey } from './charge.js';
import type { UsageRecorder } from './recorder.js';
import { windowsAt, type WindowName } from './windows.js';

/** One calendar window's usage, as the admin API and /tollgate/me show it. */
export interface WindowUsage {
  /** `2026-11-26`, `2026-11` or `total`. */
  readonly window: string;
  readonly requests: number;
  /** Input tokens, cached included (OpenAI's prompt_tokens). */
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly total_tokens: number;
  /** The settled cost of the usage the upstream reported, at the catalogue's prices. */
  readonly cost_usd: number;
  /**
   * What budgets count on top of the settled cost: reservations of requests still in flight, or
   * of requests never settled (a gateway killed mid-request is charged their reservation).
   */
  readonly reserved_usd: number;
}

export interface CapState {
  readonly limit: number;
  /** Settled plus reserved. */
  readonly used: number;
  readonly remaining: number;
  /** When the window renews; null for `total`. */
  readonly resets_at: string | null;
}

export interface UsageReport {
  readonly usage: { readonly today: WindowUsage; readonly month: WindowUsage; readonly total: WindowUsage };
  /** US dollars; only the windows the key has a budget for. */
  readonly budget_usd: Partial<Record<WindowName, CapState>>;
  readonly token_quota: Partial<Record<'daily' | 'monthly', CapState>>;
  /** Per model: what x-ratelimit-* would say now (limit, remaining, time until full). */
  readonly rate_limits: Record<string, Readonly<Record<string, string>>>;
}

export interface UsageReaderOptions {
  readonly store: LimiterStore;
  readonly recorder: UsageRecorder;
  readonly limiter: Limiter;
  readonly keyPrefix: string;
  readonly clock?: () => number;
}

export type UsageReader = (caller: Caller, models: readonly string[]) => Promise<UsageReport>;

const round = (usd: number): number => Math.round(usd * 1e9) / 1e9;

/** The usage counters live in Redis: when it does not answer, the report is unavailable (503), not a server error. */
function unavailable(error: unknown): never {
  throw new ServiceUnavailableError('Usage and budgets cannot be read: their store is unavailable. Please try again shortly.', { cause: error });
}

export function createUsageReader(options: UsageReaderOptions): UsageReader {
  const clock = options.clock ?? Date.now;
  return async (caller, models) => {
    // This instance's usage not yet written (keys without caps) goes first, so the report has it.
    await options.recorder.flush();
    const windows = windowsAt(clock());
    const hashes = await options.store.read(windows.map((w) => usageKey(options.keyPrefix, caller.id, w.id))).catch(unavailable);
    const [today, month, total] = windows.map((window, i) => {
      const h = hashes[i] ?? {};
      const get = (field: string): number => h[field] ?? 0;
      const cost = get(FIELDS.cost);
      return {
        window: window.id.replace(/^[dm]:/, ''),
        requests: get(FIELDS.requests),
        input_tokens: get(FIELDS.input),
        cached_tokens: get(FIELDS.cached),
        output_tokens: get(FIELDS.output),
        total_tokens: get(FIELDS.input) + get(FIELDS.output),
        cost_usd: round(nanoToUsd(cost)),
        reserved_usd: round(nanoToUsd(Math.max(0, get(FIELDS.spend) - cost))),
      } satisfies WindowUsage;
    }) as [WindowUsage, WindowUsage, WindowUsage];

    const budget: Partial<Record<WindowName, CapState>> = {};
    const tokens: Partial<Record<'daily' | 'monthly', CapState>> = {};
    windows.forEach((window, i) => {
      const h = hashes[i] ?? {};
      const resets = window.endsAt === Infinity ? null : new Date(window.endsAt).toISOString();
      const cap = caller.quota?.budgetNano[window.name];
      if (cap !== undefined) {
        const used = h[FIELDS.spend] ?? 0;
        budget[window.name] = {
          limit: round(nanoToUsd(cap)),
          used: round(nanoToUsd(used)),
          remaining: round(nanoToUsd(Math.max(0, cap - used))),
          resets_at: resets,
        };
      }
      const tokenCap = window.name === 'total' ? undefined : caller.quota?.tokens[window.name];
      if (tokenCap !== undefined && window.name !== 'total') {
        const used = h[FIELDS.tokens] ?? 0;
        tokens[window.name] = { limit: tokenCap, used, remaining: Math.max(0, tokenCap - used), resets_at: resets };
      }
    });

    const limits: Record<string, Readonly<Record<string, string>>> = {};
    await Promise.all(models.map(async (model) => (limits[model] = await options.limiter.peek(caller, model))));
    return { usage: { today, month, total }, budget_usd: budget, token_quota: tokens, rate_limits: limits };
  };
}

/**
 * The models a report shows rate limits for: those asked for (at most 20), else the key's
 * allow-list, else the catalogue's first model and those the key has per-model limits for.
 */
export function reportModels(caller: Caller, catalogue: Catalogue, requested: readonly string[]): string[] {
  // Models outside the catalogue share the limiter's `other` buckets.
  const canonical = (model: string): string => catalogue.resolve(model)?.name ?? 'other';
  if (requested.length > 0) return [...new Set(requested.map(canonical))].slice(0, 20);
  if (caller.models) return [...caller.models];
  const first = catalogue.models[0]?.name;
  return [...new Set([...(first === undefined ? [] : [first]), ...Object.keys(caller.limits?.models ?? {})])];
}
