import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { panelQueries, parseLabelValues, readDashboard, substitute, variableQueries } from '../helpers/dashboard.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';

// Issue 4, acceptance: a real Prometheus (Debian's `prometheus`, installed by .ci/run) scrapes a
// running tollgate under traffic, and every PromQL expression of the dashboard JSON, evaluated
// through Prometheus's HTTP API, returns data. So the dashboard can never reference a metric, a
// label or a label value that tollgate does not export.

const ALPHA = 'tg-dash-alpha-0123456789abcdef';
const TIGHT = 'tg-dash-tight-0123456789abcdef';
const CACHED = 'tg-dash-cached-0123456789abcdef';
let upstream: FakeUpstream;
let second: FakeUpstream;
let gateway: TestGateway;
let prometheus: PrometheusServer;

beforeAll(async () => {
  upstream = await startFakeUpstream({ record: false });
  second = await startFakeUpstream({ record: false });
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    config: {
      // A pool of two (the upstreams row): the second serves one model, so requests for the others
      // stay on the first (its retries and ejection); a model capped at 1 RPM on the first's
      // ceiling (its refusals); the ceiling's headroom and calibration drift.
      upstreams: [
        { id: 'primary', url: upstream.url, ceiling: { rpm: 100_000, models: { 'capped-model': { rpm: 1 } } } },
        { id: 'secondary', url: second.url, models: ['gpt-4.1-nano'] },
      ],
      outlier_detection: { consecutive_failures: 3, base_ejection_ms: 50, max_ejection_ms: 100 },
      models: {
        catalogue: [
          // A model without a price: its tokens are counted as unpriced.
          { name: 'house-model' },
          { name: 'capped-model' },
          // Going away (the retired-model callers row).
          { name: 'gpt-going', shutdown_date: '2099-01-01', successor: 'gpt-4.1-nano' },
        ],
      },
      keys: [
        { id: 'alpha', key: ALPHA, tier: 'tier-1' },
        { id: 'tight', key: TIGHT, tier: 'tier-1', limits: { rpm: 1 } },
        // The response cache: a miss, then hits in every round.
        { id: 'cached', key: CACHED, tier: 'tier-1', cache: { ttl_s: 600 } },
      ],
    },
  });
  prometheus = await startPrometheus({ jobs: { tollgate: new URL(gateway.origin).host }, scrapeIntervalS: 1 });
}, 60_000);
afterAll(async () => {
  await prometheus?.stop();
  await gateway?.close();
  await upstream?.close();
  await second?.close();
});

async function call(path: string, key: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/**
 * One round of traffic touching every panel: spend, cache, estimates, unpriced, 429s, errors,
 * streams, the upstream pool (failover, retries, ejection, ceiling), models going away.
 */
async function traffic(): Promise<void> {
  const messages = [{ role: 'user', content: 'hello '.repeat(50) }];
  const chat = { model: 'gpt-4.1-nano', messages };
  expect(await call('/chat/completions', ALPHA, chat, { 'x-fake-prompt-tokens': '2048', 'x-fake-cached-tokens': '1024' })).toBe(200);
  expect(await call('/chat/completions', ALPHA, { ...chat, stream: true })).toBe(200);
  expect(await call('/responses', ALPHA, { model: 'gpt-4.1-nano', input: 'hi', stream: true })).toBe(200);
  expect(await call('/embeddings', ALPHA, { model: 'text-embedding-3-small', input: 'embed me' })).toBe(200);
  expect(await call('/chat/completions', ALPHA, { ...chat, model: 'house-model' })).toBe(200);
  // Priced by other units: images and characters.
  expect(await call('/images/generations', ALPHA, { model: 'dall-e-2', prompt: 'a cat', size: '256x256' })).toBe(200);
  expect(await call('/audio/speech', ALPHA, { model: 'tts-1', voice: 'alloy', input: 'hello there' })).toBe(200);
  // Cut mid-stream: usage estimated, counted as an upstream stream_cut.
  expect(await call('/chat/completions', ALPHA, { ...chat, stream: true }, { 'x-fake-chunks': '20', 'x-fake-cut-after': '5' })).toBe(200);
  // Both upstreams fail: the request fails over from one to the other.
  expect(await call('/chat/completions', ALPHA, chat, { 'x-fake-status': '500' })).toBe(500);
  // Only the first serves this model: retried on it, which three failures in a row eject.
  expect(await call('/chat/completions', ALPHA, { ...chat, model: 'house-model' }, { 'x-fake-status': '503' })).toBe(503);
  // 1 RPM on the first's ceiling: the second call (and later rounds') meets the ceiling.
  await call('/chat/completions', ALPHA, { ...chat, model: 'capped-model' });
  expect(await call('/chat/completions', ALPHA, { ...chat, model: 'capped-model' })).toBe(429);
  expect(await call('/chat/completions', ALPHA, { ...chat, model: 'gpt-going' })).toBe(200);
  for (let i = 0; i < 2; i++) expect(await call('/chat/completions', CACHED, chat, { 'x-fake-prompt-tokens': '2048', 'x-fake-cached-tokens': '1024' })).toBe(200);
  // rpm 1: the second call of the key is refused.
  await call('/chat/completions', TIGHT, chat);
  expect(await call('/chat/completions', TIGHT, chat)).toBe(429);
}

describe('the Grafana dashboard against a real Prometheus', () => {
  const dashboard = readDashboard();
  const panels = panelQueries(dashboard);
  const variables = variableQueries(dashboard);

  beforeAll(async () => {
    // Two rounds with a scrape after each: every rate() sees an increase between two samples.
    for (let round = 0; round < 2; round++) {
      await traffic();
      await prometheus.waitForScrape('tollgate', Date.now());
    }
  }, 60_000);

  it('finds the dashboard’s queries', () => {
    expect(panels.length).toBeGreaterThanOrEqual(25);
    expect(variables.map((v) => v.where)).toEqual(['variable key', 'variable model', 'variable endpoint']);
  });

  it('every panel expression returns data', async () => {
    const empty: string[] = [];
    for (const { where, expr } of panels) {
      const result = await prometheus.query(substitute(expr));
      if (result.length === 0) empty.push(`${where}: ${expr}`);
      else if (!result.some((s) => Number.isFinite(s.value))) empty.push(`${where} (only NaN): ${expr}`);
    }
    expect(empty).toEqual([]);
  });

  it('spend by unit shows the units of the traffic', async () => {
    const panel = panels.find((p) => p.expr.startsWith('sum by (unit)'));
    expect(panel).toBeDefined();
    const result = await prometheus.query(substitute((panel as { expr: string }).expr));
    expect(result.map((s) => s.metric.unit).sort()).toEqual(['characters', 'images', 'tokens']);
  });

  it('every template variable lists values', async () => {
    for (const { where, expr } of variables) {
      const { selector, label } = parseLabelValues(substitute(expr));
      expect(await prometheus.labelValues(label, selector), where).not.toEqual([]);
    }
    const keys = await prometheus.labelValues('key', 'tollgate_requests_total');
    expect(keys).toEqual(expect.arrayContaining(['alpha', 'tight']));
  });

  it('the test can tell an expression that matches nothing', async () => {
    expect(await prometheus.query(substitute('sum(rate(tollgate_no_such_metric_total[$__rate_interval]))'))).toEqual([]);
  });
});
