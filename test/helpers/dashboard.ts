// Reading the Grafana dashboard as data: its PromQL expressions and template variables, with the
// variables substituted the way Grafana would for "All" over a short range.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_PATH = fileURLToPath(new URL('../../docker/grafana/dashboards/tollgate.json', import.meta.url));

export interface DashboardQuery {
  /** Where it stands: the panel title and the target's refId, or the variable's name. */
  readonly where: string;
  readonly expr: string;
}

type Json = Record<string, unknown>;

export function readDashboard(): Json {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Json;
}

/** Every `expr` anywhere in the dashboard (panels, rows' panels, any depth). */
export function panelQueries(dashboard: Json): DashboardQuery[] {
  const found: DashboardQuery[] = [];
  const walk = (node: unknown, title: string): void => {
    if (Array.isArray(node)) {
      for (const item of node) walk(item, title);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const obj = node as Json;
    const here = typeof obj.title === 'string' ? obj.title : title;
    if (typeof obj.expr === 'string') found.push({ where: `${here} / ${String(obj.refId)}`, expr: obj.expr });
    for (const [key, value] of Object.entries(obj)) if (key !== 'templating') walk(value, here);
  };
  walk(dashboard, '(dashboard)');
  return found;
}

/** The query of every template variable of type `query`. */
export function variableQueries(dashboard: Json): DashboardQuery[] {
  const list = ((dashboard.templating as Json | undefined)?.list ?? []) as Json[];
  return list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const query = v.query;
      const expr = typeof query === 'string' ? query : String((query as Json).query);
      return { where: `variable ${String(v.name)}`, expr };
    });
}

/** Grafana's variables as the test evaluates them: every key, model and endpoint ("All"), short ranges. */
const SUBSTITUTIONS: [RegExp, string][] = [
  [/\$__rate_interval/g, '1m'],
  [/\$__interval/g, '15s'],
  [/\$__range/g, '5m'],
  [/\$\{?(key|model|endpoint)\}?/g, '.*'],
];

export function substitute(expr: string): string {
  let out = expr;
  for (const [pattern, value] of SUBSTITUTIONS) out = out.replace(pattern, value);
  if (out.includes('$')) throw new Error(`unknown variable left in: ${out}`);
  return out;
}

/** `label_values(selector, label)` → its parts, as Grafana's Prometheus data source reads them. */
export function parseLabelValues(expr: string): { selector: string; label: string } {
  const match = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(expr.trim());
  if (!match) throw new Error(`not a label_values() query: ${expr}`);
  return { selector: (match[1] as string).trim(), label: match[2] as string };
}
