// docs/reference/metrics.md and docs/reference/admin-api.md (+ admin-openapi.json), from a gateway
// built as the server builds it: the metrics its Registry holds and the admin API's OpenAPI
// document, so what is documented is what is registered and served.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { buildApp } from '../../src/app.js';
import { configFromObject } from '../../src/config/load.js';
import { cell, GENERATED_NOTE } from './markdown.js';

interface RegisteredMetric {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly labelNames: readonly string[];
}

type Json = Readonly<Record<string, unknown>>;
const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function registered(metric: unknown): RegisteredMetric {
  const m = isJson(metric) ? metric : {};
  const labelNames = Array.isArray(m.labelNames) ? m.labelNames.map(String) : [];
  return { name: String(m.name), help: String(m.help), type: String(m.type), labelNames };
}

/** prom-client's process and Node.js defaults: they differ between Node versions, so they are named as a family. */
function defaultMetricNames(): Set<string> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tollgate_' });
  return new Set(registry.getMetricsAsArray().map((metric) => registered(metric).name));
}

export interface AppReference {
  readonly metrics: string;
  readonly adminApi: string;
  readonly openApi: string;
}

export async function renderAppReference(): Promise<AppReference> {
  const registry = new Registry();
  const app = await buildApp({
    config: configFromObject({}),
    upstreamUrl: 'http://127.0.0.1:9/v1',
    upstreamApiKey: undefined,
    adminToken: 'docs-generator',
    registry,
    logLevel: 'silent',
  });
  try {
    // Over a real socket: the shutdown drain ends sockets, which inject()'s stand-ins cannot.
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const answer = await fetch(`${address}/admin/openapi.json`, { headers: { authorization: 'Bearer docs-generator' } });
    if (answer.status !== 200) throw new Error(`GET /admin/openapi.json answered ${answer.status}`);
    const document: unknown = await answer.json();
    const defaults = defaultMetricNames();
    const metrics = registry
      .getMetricsAsArray()
      .map(registered)
      .filter((metric) => !defaults.has(metric.name))
      .sort((a, b) => a.name.localeCompare(b.name));
    return { metrics: metricsPage(metrics), adminApi: adminApiPage(document), openApi: `${JSON.stringify(document, null, 2)}\n` };
  } finally {
    await app.close();
  }
}

function metricsPage(metrics: readonly RegisteredMetric[]): string {
  return [
    '# Metrics reference',
    '',
    GENERATED_NOTE('the metrics the gateway registers (src/metrics/)'),
    '',
    '`GET /metrics` serves these in the Prometheus text format, with prom-client\'s process and Node.js metrics (`tollgate_process_*`, `tollgate_nodejs_*`). What the labels hold and how the figures are counted: [Metrics and the dashboard](../metrics-dashboard.md).',
    '',
    '| metric | type | labels | what |',
    '|---|---|---|---|',
    ...metrics.map((m) => `| \`${m.name}\` | ${m.type} | ${m.labelNames.map((l) => `\`${l}\``).join(', ')} | ${cell(m.help)} |`),
    '',
  ].join('\n');
}

function adminApiPage(document: unknown): string {
  const doc = isJson(document) ? document : {};
  const paths = isJson(doc.paths) ? doc.paths : {};
  const rows: string[] = [];
  for (const [path, operations] of Object.entries(paths)) {
    if (!isJson(operations)) continue;
    for (const [method, operation] of Object.entries(operations)) {
      const op = isJson(operation) ? operation : {};
      const statuses = isJson(op.responses) ? Object.keys(op.responses).join(', ') : '';
      rows.push(`| \`${method.toUpperCase()} ${path}\` | ${cell(String(op.summary ?? ''))} | ${statuses} |`);
    }
  }
  return [
    '# Admin API reference',
    '',
    GENERATED_NOTE('the OpenAPI document the gateway serves at GET /admin/openapi.json (src/routes/admin-openapi.ts)'),
    '',
    'The complete reference is the OpenAPI 3.1 document [admin-openapi.json](admin-openapi.json): every route with its parameters, request body and answers as JSON Schema, built from the schemas the routes validate with. Load it into any OpenAPI viewer, or ask a running gateway for it: `curl -H "Authorization: Bearer $TOLLGATE_ADMIN_TOKEN" http://127.0.0.1:8080/admin/openapi.json`. How keys, budgets and quotas work: [Keys, budgets and quotas](../keys-budgets-quotas.md).',
    '',
    'Every route needs `Authorization: Bearer $TOLLGATE_ADMIN_TOKEN` (the admin API exists only when the variable is set). Errors use OpenAI\'s envelope.',
    '',
    '| route | what | answers |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
