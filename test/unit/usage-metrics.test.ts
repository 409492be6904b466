import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Caller } from '../../src/auth/keys.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { FastHistogram } from '../../src/metrics/histogram.js';
import { createRemainingGauge } from '../../src/metrics/ratelimit-gauge.js';
import { Tally } from '../../src/metrics/tally.js';
import { createUsageMetrics } from '../../src/metrics/usage-metrics.js';
import { nanoOf, parseSamples, samplesOf, sumOf } from '../helpers/prom-text.js';

const catalogue = buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'house-model' }] } }));
const pricesOf = (model: string) => catalogue.resolve(model)?.prices;

async function scrape(registry: Registry) {
  return parseSamples(await registry.metrics());
}

describe('Tally', () => {
  it('exposes integer cells divided at scrape time, exact to the unit for sums of many small amounts', async () => {
    const registry = new Registry();
    const tally = new Tally({ name: 'tollgate_test_usd_total', help: 'test', labelNames: ['k'], registry, divisor: 1e9 });
    const a = tally.cell({ k: 'a' });
    const b = tally.cell({ k: 'b' });
    // 0.1 + 0.2 in floating point dollars would drift; integer nano-dollars do not.
    for (let i = 0; i < 1000; i++) a.value += 100_000_000 + 7;
    b.value += 1;
    const samples = await scrape(registry);
    expect(nanoOf(samples, 'tollgate_test_usd_total', { k: 'a' })).toBe(1000 * 100_000_007);
    expect(samplesOf(samples, 'tollgate_test_usd_total', { k: 'b' })[0]?.value).toBe(1e-9);
    expect(samples.find((s) => s.name === 'tollgate_test_usd_total')).toBeDefined();
    expect(await registry.metrics()).toContain('# TYPE tollgate_test_usd_total counter');
  });
});

describe('usage metrics', () => {
  it('counts unit-priced requests under their unit (tokens cost stays under unit="tokens"), with or without a model', async () => {
    const registry = new Registry();
    const usage = createUsageMetrics({ registry, pricesOf });
    usage.count('k1', 'gpt-4.1-nano', { inputTokens: 10, cachedTokens: 0, outputTokens: 0 }, 'reported');
    const images = { unit: 'images' as const, quantity: 2, input: 0, cachedInput: 0, output: 80_000_000 };
    expect(usage.count('k1', 'dall-e-3', { inputTokens: 0, cachedTokens: 0, outputTokens: 0, billed: images }, 'reported').total).toBe(80_000_000);
    usage.count('k1', 'dall-e-3', { inputTokens: 0, cachedTokens: 0, outputTokens: 0, billed: images }, 'estimated');
    const session = { unit: 'sessions' as const, quantity: 1, input: 0, cachedInput: 0, output: 30_000_000 };
    usage.count('k1', 'none', { inputTokens: 0, cachedTokens: 0, outputTokens: 0, billed: session }, 'reported');
    const gptImage = { unit: 'tokens' as const, quantity: 282, input: 50_000, cachedInput: 0, output: 10_880_000 };
    usage.count('k1', 'gpt-image-1', { inputTokens: 10, cachedTokens: 0, outputTokens: 272, billed: gptImage }, 'reported');
    const samples = await scrape(registry);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'k1', model: 'gpt-4.1-nano', unit: 'tokens', type: 'input' })).toBe(1_000);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'k1', model: 'dall-e-3', unit: 'images', type: 'output' })).toBe(160_000_000);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'k1', model: 'none', unit: 'sessions' })).toBe(30_000_000);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'k1', model: 'gpt-image-1', unit: 'tokens' })).toBe(10_930_000);
    expect(sumOf(samples, 'tollgate_tokens_total', { key: 'k1', model: 'gpt-image-1', type: 'output' })).toBe(272);
    // A container (model `none`) is priced, not counted as unpriced tokens.
    expect(samplesOf(samples, 'tollgate_unpriced_tokens_total', { model: 'none' }).every((s) => s.value === 0)).toBe(true);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'k1' })).toBe(1_000 + 160_000_000 + 30_000_000 + 10_930_000);
  });

  it('counts tokens by type (input = uncached), cost per type, and what cached input saved', async () => {
    const registry = new Registry();
    const usage = createUsageMetrics({ registry, pricesOf });
    // 1,000 prompt tokens of which 600 cached, 50 output: 400×100 + 600×25 + 50×400 nano-dollars.
    const cost = usage.count('k1', 'gpt-4.1-nano', { inputTokens: 1000, cachedTokens: 600, outputTokens: 50 }, 'reported');
    expect(cost).toEqual({ input: 40_000, cachedInput: 15_000, output: 20_000, total: 75_000 });
    const samples = await scrape(registry);
    const labels = { key: 'k1', model: 'gpt-4.1-nano' };
    expect(sumOf(samples, 'tollgate_tokens_total', { ...labels, type: 'input', source: 'reported' })).toBe(400);
    expect(sumOf(samples, 'tollgate_tokens_total', { ...labels, type: 'cached_input', source: 'reported' })).toBe(600);
    expect(sumOf(samples, 'tollgate_tokens_total', { ...labels, type: 'output', source: 'reported' })).toBe(50);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { ...labels, type: 'input' })).toBe(40_000);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { ...labels, type: 'cached_input' })).toBe(15_000);
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { ...labels, type: 'output' })).toBe(20_000);
    // 600 cached tokens × ($0.10 − $0.025) per 1M = 45,000 nano-dollars.
    expect(nanoOf(samples, 'tollgate_saved_usd_total', { ...labels, source: 'prompt_cache' })).toBe(45_000);
  });

  it('keeps estimated tokens apart from reported ones, and prices them', async () => {
    const registry = new Registry();
    const usage = createUsageMetrics({ registry, pricesOf });
    usage.count('k1', 'gpt-4.1-nano', { inputTokens: 10, cachedTokens: 0, outputTokens: 3 }, 'reported');
    usage.count('k1', 'gpt-4.1-nano', { inputTokens: 20, cachedTokens: 0, outputTokens: 5 }, 'estimated');
    const samples = await scrape(registry);
    expect(sumOf(samples, 'tollgate_tokens_total', { source: 'estimated', type: 'input' })).toBe(20);
    expect(sumOf(samples, 'tollgate_tokens_total', { source: 'reported', type: 'input' })).toBe(10);
    expect(nanoOf(samples, 'tollgate_cost_usd_total')).toBe(30 * 100 + 8 * 400);
  });

  it('bills batches at the Batch prices, with no cache saving', async () => {
    const registry = new Registry();
    const usage = createUsageMetrics({ registry, pricesOf });
    const cost = usage.count('k1', 'gpt-4.1-nano', { inputTokens: 1000, cachedTokens: 600, outputTokens: 50 }, 'reported', true);
    expect(cost.total).toBe(1000 * 50 + 50 * 200);
    const samples = await scrape(registry);
    expect(nanoOf(samples, 'tollgate_cost_usd_total')).toBe(60_000);
    expect(nanoOf(samples, 'tollgate_saved_usd_total')).toBe(0);
    expect(sumOf(samples, 'tollgate_tokens_total', { type: 'cached_input' })).toBe(600);
  });

  it('counts a model without a price at 0 and as unpriced', async () => {
    const registry = new Registry();
    const usage = createUsageMetrics({ registry, pricesOf });
    expect(usage.count('k1', 'house-model', { inputTokens: 7, cachedTokens: 2, outputTokens: 4 }, 'reported').total).toBe(0);
    expect(usage.count('k1', 'other', { inputTokens: 1, cachedTokens: 0, outputTokens: 1 }, 'reported').total).toBe(0);
    const samples = await scrape(registry);
    expect(sumOf(samples, 'tollgate_unpriced_tokens_total', { model: 'house-model' })).toBe(11);
    expect(sumOf(samples, 'tollgate_unpriced_tokens_total', { model: 'house-model', type: 'cached_input' })).toBe(2);
    expect(sumOf(samples, 'tollgate_unpriced_tokens_total', { model: 'other' })).toBe(2);
    expect(samplesOf(samples, 'tollgate_cost_usd_total')).toHaveLength(0);
    expect(sumOf(samples, 'tollgate_tokens_total', { model: 'house-model' })).toBe(11);
  });
});

describe('remaining gauge', () => {
  const caller = (id: string): Caller => ({ id, tier: 'tier-1', limits: undefined, maxWaitMs: undefined });
  const headers = (requests: number, tokens: number) => ({
    'x-ratelimit-limit-requests': '500',
    'x-ratelimit-remaining-requests': String(requests),
    'x-ratelimit-limit-tokens': '200000',
    'x-ratelimit-remaining-tokens': String(tokens),
  });

  it('shows each key’s last admission (refilled to now, never above the limit), per model and limit', async () => {
    const registry = new Registry();
    const gauge = createRemainingGauge({ registry, keyLabel: (id) => id, requestsLimitOf: (c) => (c.id === 'daily' ? 'rpd' : 'rpm') });
    gauge.admitted(caller('a'), 'gpt-4.1-nano', headers(499, 1000));
    gauge.admitted(caller('daily'), 'gpt-4.1-nano', headers(10, 200_000));
    const samples = await scrape(registry);
    const a = samplesOf(samples, 'tollgate_ratelimit_remaining', { key: 'a', limit: 'rpm' })[0]?.value ?? -1;
    expect(a).toBeGreaterThanOrEqual(499);
    expect(a).toBeLessThanOrEqual(500);
    const tokens = samplesOf(samples, 'tollgate_ratelimit_remaining', { key: 'a', limit: 'tpm' })[0]?.value ?? -1;
    expect(tokens).toBeGreaterThanOrEqual(1000);
    expect(tokens).toBeLessThanOrEqual(200_000);
    expect(samplesOf(samples, 'tollgate_ratelimit_remaining', { key: 'daily', limit: 'rpd' })).toHaveLength(1);
    expect(samplesOf(samples, 'tollgate_ratelimit_remaining', { key: 'daily', limit: 'tpm' })[0]?.value).toBe(200_000);
  });

  it('without per-key labels: one series per model and limit, the lowest key', async () => {
    const registry = new Registry();
    const gauge = createRemainingGauge({ registry, keyLabel: () => 'all', requestsLimitOf: () => 'rpd' });
    gauge.admitted(caller('a'), 'gpt-4.1-nano', headers(3, 150_000));
    gauge.admitted(caller('b'), 'gpt-4.1-nano', headers(7, 100_000));
    const samples = samplesOf(await scrape(registry), 'tollgate_ratelimit_remaining');
    expect(samples.map((s) => s.labels.key)).toEqual(['all', 'all']);
    // RPD refills 500 a day: nothing measurable refills during the test.
    expect(samples.find((s) => s.labels.limit === 'rpd')?.value).toBe(3);
    expect(samples.find((s) => s.labels.limit === 'tpm')?.value).toBeGreaterThanOrEqual(100_000);
    expect(samples.find((s) => s.labels.limit === 'tpm')?.value).toBeLessThan(150_000);
  });
});

describe('FastHistogram', () => {
  it('exposes exactly what prom-client’s Histogram exposes for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const buckets = [0.0001, 0.005, 0.1, 1, 2.5];
    const fast = new FastHistogram({ name: 'tollgate_h_seconds', help: 'h', labelNames: ['endpoint'], buckets, registry: ours });
    const reference = new Histogram({ name: 'tollgate_h_seconds', help: 'h', labelNames: ['endpoint'], buckets, registers: [theirs] });
    const a = fast.child({ endpoint: '/a' });
    const b = fast.child({ endpoint: '/b' });
    for (const value of [0, 0.0001, 0.00011, 0.005, 0.3, 1, 2.5, 2.6, 400]) {
      a.observe(value);
      reference.observe({ endpoint: '/a' }, value);
    }
    b.observe(0.05);
    reference.observe({ endpoint: '/b' }, 0.05);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    fast.reset();
    reference.reset();
    expect(sumOf(parseSamples(await ours.metrics()), 'tollgate_h_seconds_count')).toBe(0);
  });
});
