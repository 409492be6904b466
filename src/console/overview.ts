import type { Catalogue } from '../config/catalogue.js';
import type { KeyAdmin, KeyView } from '../keys/admin.js';
import { reportModels, type UsageReader, type UsageReport } from '../quota/report.js';
import { nanoToUsd } from '../usage/cost.js';

export interface OverviewDeps {
  readonly admin: KeyAdmin;
  readonly usage: UsageReader;
  readonly catalogue: Catalogue;
}

/** A key is "near its budget" from this share of any budget window on. */
export const NEAR_BUDGET = 0.8;

export interface KeyRow {
  readonly key: KeyView;
  readonly usage: UsageReport;
  /** The largest used/limit share of the key's budgets; null without budgets. */
  readonly budget_share: number | null;
}

const toNano = (usd: number): number => Math.round(usd * 1e9);

function budgetShare(report: UsageReport): number | null {
  const shares = Object.values(report.budget_usd).map((cap) => (cap.limit > 0 ? cap.used / cap.limit : 1));
  return shares.length === 0 ? null : Math.max(...shares);
}

/**
 * The admin overview and the keys table: every key with its usage report, and the totals of today
 * and this month (summed in integer nano-dollars). Reads only; one usage report per key.
 */
export async function overview(deps: OverviewDeps): Promise<Record<string, unknown>> {
  const keys = await deps.admin.list();
  const rows: KeyRow[] = await Promise.all(
    keys.map(async (key) => {
      const caller = await deps.admin.callerOf(key.id);
      const usage = await deps.usage(caller, reportModels(caller, deps.catalogue, []));
      return { key, usage, budget_share: budgetShare(usage) };
    }),
  );
  const total = (window: 'today' | 'month') => {
    let requests = 0;
    let input = 0;
    let cached = 0;
    let output = 0;
    let costNano = 0;
    for (const { usage } of rows) {
      const w = usage.usage[window];
      requests += w.requests;
      input += w.input_tokens;
      cached += w.cached_tokens;
      output += w.output_tokens;
      costNano += toNano(w.cost_usd);
    }
    return { requests, input_tokens: input, cached_tokens: cached, output_tokens: output, cost_usd: nanoToUsd(costNano) };
  };
  return {
    object: 'console.overview',
    today: total('today'),
    month: total('month'),
    near_budget_share: NEAR_BUDGET,
    keys: rows,
  };
}
