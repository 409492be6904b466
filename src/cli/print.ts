import type { WindowUsage } from '../quota/report.js';
import type { KeyJson, UsageJson } from './client.js';

/** Readable tables for the CLI: columns padded to their widest cell. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

const dash = (value: unknown): string => (value === undefined || value === null || value === '' ? '-' : String(value));

function budgets(key: KeyJson): string {
  const b = key.budget_usd;
  if (!b) return '-';
  return (['daily', 'monthly', 'total'] as const)
    .filter((w) => b[w] !== undefined && b[w] !== null)
    .map((w) => `${w[0]}:$${b[w]}`)
    .join(' ') || '-';
}

export function printKeyList(keys: readonly KeyJson[]): string {
  if (keys.length === 0) return 'no keys\n';
  return table(
    ['ID', 'SOURCE', 'STATUS', 'TIER', 'BUDGET', 'MODELS', 'TEAM', 'KEY'],
    keys.map((k) => [k.id, k.source, k.status, k.tier, budgets(k), k.models?.join(',') ?? 'all', dash(k.metadata?.team), dash(k.key_hint)]),
  );
}

export function printKey(key: KeyJson): string {
  const rows: [string, string][] = [
    ['id', key.id],
    ['source', key.source],
    ['status', key.status],
    ['tier', key.tier],
    ['limits', key.limits ? JSON.stringify(key.limits) : 'tier defaults'],
    ['models', key.models?.join(', ') ?? 'all'],
    ['budget_usd', budgets(key)],
    ['token_quota', key.token_quota ? JSON.stringify(key.token_quota) : '-'],
    ['expires_at', dash(key.expires_at)],
    ['team', dash(key.metadata?.team)],
    ['owner', dash(key.metadata?.owner)],
    ['description', dash(key.metadata?.description)],
    ['key', dash(key.key_hint)],
    ['created_at', dash(key.created_at)],
    ['updated_at', dash(key.updated_at)],
    ['revoked_at', dash(key.revoked_at)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  let text = rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n') + '\n';
  if (key.key !== undefined) text += `\nsecret: ${key.key}\n(shown this once: store it now)\n`;
  return text;
}

const usd = (n: number): string => `$${n.toFixed(6)}`;

export function printUsage(report: UsageJson): string {
  const windows: [string, WindowUsage][] = [['today', report.usage.today], ['month', report.usage.month], ['total', report.usage.total]];
  let text = `usage of ${report.id}\n`;
  text += table(
    ['WINDOW', 'PERIOD', 'REQUESTS', 'INPUT', 'CACHED', 'OUTPUT', 'COST', 'RESERVED'],
    windows.map(([name, w]) => [name, w.window, String(w.requests), String(w.input_tokens), String(w.cached_tokens), String(w.output_tokens), usd(w.cost_usd), usd(w.reserved_usd)]),
  );
  const caps = [
    ...Object.entries(report.budget_usd).map(([w, c]) => [`budget ${w}`, usd(c.limit), usd(c.used), usd(c.remaining), dash(c.resets_at)]),
    ...Object.entries(report.token_quota).map(([w, c]) => [`tokens ${w}`, String(c.limit), String(c.used), String(c.remaining), dash(c.resets_at)]),
  ];
  if (caps.length > 0) text += `\n${table(['CAP', 'LIMIT', 'USED', 'REMAINING', 'RESETS'], caps)}`;
  const limits = Object.entries(report.rate_limits);
  if (limits.length > 0) {
    text += `\n${table(
      ['MODEL', 'REQUESTS LEFT', 'TOKENS LEFT'],
      limits.map(([model, h]) => [
        model,
        `${dash(h['x-ratelimit-remaining-requests'])}/${dash(h['x-ratelimit-limit-requests'])}`,
        `${dash(h['x-ratelimit-remaining-tokens'])}/${dash(h['x-ratelimit-limit-tokens'])}`,
      ]),
    )}`;
  }
  return text;
}
