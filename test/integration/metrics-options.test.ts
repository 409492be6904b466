import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { nanoOf, parseSamples, samplesOf, sumOf, type Sample } from '../helpers/prom-text.js';

// Metrics beyond the happy path: usage that could not be read is counted as the settlement
// estimate (source=estimated), upstream failures by kind, per-key labels switched off, and
// metrics switched off altogether.

const KEY_B = 'tg-metrics-options-b-0123456789abcdef';
let upstream: FakeUpstream;
const started: TestGateway[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await Promise.all(started.map((g) => g.close()));
  await upstream?.close();
});

async function gateway(config: Parameters<typeof startGateway>[0]['config'] = {}, upstreamUrl = upstream.url): Promise<TestGateway> {
  const g = await startGateway({ upstreamUrl, config });
  started.push(g);
  return g;
}

async function scrape(g: TestGateway): Promise<Sample[]> {
  return parseSamples(await (await fetch(`${g.origin}/metrics`)).text());
}

function chat(g: TestGateway, headers: Record<string, string>, body: Record<string, unknown> = {}, key = CLIENT_KEY): Promise<Response> {
  return fetch(`${g.url}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'x'.repeat(400) }], ...body }),
  });
}

const requestLines = (g: TestGateway) => g.logs.filter((l) => l.msg === 'request');

describe('usage that could not be read', () => {
  it('a stream cut before its usage: the settlement estimate, counted as estimated and priced, the same figures in the log line', async () => {
    const g = await gateway();
    const res = await chat(g, { 'x-fake-chunks': '20', 'x-fake-cut-after': '6' }, { stream: true });
    expect(res.status).toBe(200);
    await res.text();
    await vi.waitFor(() => expect(requestLines(g)).toHaveLength(1));
    const line = requestLines(g)[0] as Record<string, number | string>;
    expect(line).toMatchObject({ stream_end: 'upstream_error', tokens_source: 'estimated', cached_tokens: 0 });
    // 400 characters of prompt (+ keys) at 4 characters a token; output: the events relayed.
    expect(line.input_tokens).toBeGreaterThanOrEqual(100);
    expect(line.output_tokens).toBeGreaterThan(0);
    const samples = await scrape(g);
    expect(sumOf(samples, 'tollgate_tokens_total', { source: 'estimated', type: 'input' })).toBe(line.input_tokens);
    expect(sumOf(samples, 'tollgate_tokens_total', { source: 'estimated', type: 'output' })).toBe(line.output_tokens);
    expect(sumOf(samples, 'tollgate_tokens_total', { source: 'reported' })).toBe(0);
    const cost = (line.input_tokens as number) * 100 + (line.output_tokens as number) * 400;
    expect(line.cost_nano).toBe(cost);
    expect(nanoOf(samples, 'tollgate_cost_usd_total')).toBe(cost);
    expect(sumOf(samples, 'tollgate_upstream_errors_total', { status: 'stream_cut' })).toBe(1);
  });

  it('a client that left before the answer: the input estimate, counted as estimated', async () => {
    const g = await gateway();
    const controller = new AbortController();
    const aborted = fetch(`${g.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', 'x-fake-latency-ms': '5000' },
      body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'y'.repeat(400) }] }),
      signal: controller.signal,
    }).catch(() => undefined);
    await vi.waitFor(() => expect(upstream.requests.some((r) => r.headers['x-fake-latency-ms'] === '5000')).toBe(true));
    controller.abort();
    await aborted;
    await vi.waitFor(() => expect(requestLines(g).some((l) => l.status === 499)).toBe(true));
    const line = requestLines(g).find((l) => l.status === 499) as Record<string, unknown>;
    expect(line).toMatchObject({ tokens_source: 'estimated', output_tokens: 0 });
    const samples = await scrape(g);
    expect(sumOf(samples, 'tollgate_tokens_total', { source: 'estimated', type: 'input' })).toBe(line.input_tokens);
    expect(sumOf(samples, 'tollgate_upstream_errors_total')).toBe(0);
  });
});

describe('upstream failures by kind', () => {
  it('counts an upstream 5xx by status, and what the gateway answered 502 / 504 as unreachable / timeout', async () => {
    const g = await gateway({ upstream: { headers_timeout_ms: 200 } });
    expect((await chat(g, { 'x-fake-status': '503' })).status).toBe(503);
    expect((await chat(g, { 'x-fake-latency-ms': '2000' })).status).toBe(504);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await gateway({}, `http://127.0.0.1:${port}/v1`);
    expect((await chat(unreachable, {})).status).toBe(502);
    await vi.waitFor(async () => {
      const samples = await scrape(g);
      expect(sumOf(samples, 'tollgate_upstream_errors_total', { status: '503' })).toBe(1);
      expect(sumOf(samples, 'tollgate_upstream_errors_total', { status: 'timeout' })).toBe(1);
      expect(sumOf(await scrape(unreachable), 'tollgate_upstream_errors_total', { status: 'unreachable' })).toBe(1);
    });
    // Errors carry no usage and no time to first token of an answer.
    const samples = await scrape(g);
    expect(sumOf(samples, 'tollgate_tokens_total')).toBe(0);
    expect(sumOf(samples, 'tollgate_time_to_first_token_seconds_count')).toBe(0);
  });
});

describe('metrics options', () => {
  it('per_key_labels: false labels every key `all`; no key id reaches /metrics', async () => {
    const g = await gateway({
      metrics: { per_key_labels: false },
      keys: [
        { id: 'secret-team-a', key: CLIENT_KEY, tier: 'tier-1' },
        { id: 'secret-team-b', key: KEY_B, tier: 'tier-1' },
      ],
    });
    for (const key of [CLIENT_KEY, KEY_B]) expect((await chat(g, { 'x-fake-prompt-tokens': '10' }, {}, key)).status).toBe(200);
    let samples: Sample[] = [];
    await vi.waitFor(async () => {
      samples = await scrape(g);
      expect(sumOf(samples, 'tollgate_requests_total', { key: 'all', cache: 'none', status_class: '2xx' })).toBe(2);
    });
    for (const name of ['tollgate_requests_total', 'tollgate_tokens_total', 'tollgate_cost_usd_total', 'tollgate_ratelimit_remaining']) {
      const keys = new Set(samplesOf(samples, name).map((s) => s.labels.key));
      expect([...keys], name).toEqual(['all']);
    }
    expect(sumOf(samples, 'tollgate_tokens_total', { type: 'input' })).toBe(20);
    const text = await (await fetch(`${g.origin}/metrics`)).text();
    expect(text).not.toContain('secret-team');
  });

  it('enabled: false serves no /metrics; the log line still shows each request’s cost', async () => {
    const g = await gateway({ metrics: { enabled: false } });
    expect((await chat(g, { 'x-fake-prompt-tokens': '1000', 'x-fake-cached-tokens': '600', 'x-fake-chunks': '50' })).status).toBe(200);
    const res = await fetch(`${g.origin}/metrics`);
    expect(res.status).toBe(404);
    await res.text();
    await vi.waitFor(() => expect(requestLines(g).filter((l) => l.status === 200)).toHaveLength(1));
    expect(requestLines(g).find((l) => l.status === 200)).toMatchObject({ tokens_source: 'reported', cost_nano: 400 * 100 + 600 * 25 + 50 * 400, cost_usd: 0.000075 });
  });
});
