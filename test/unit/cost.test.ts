import { describe, expect, it } from 'vitest';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { costOf } from '../../src/usage/cost.js';

const catalogue = buildCatalogue(configFromObject({}));
const nano = catalogue.resolve('gpt-4.1-nano-2025-04-14')?.prices;

describe('costOf', () => {
  it('prices uncached input, cached input and output separately (prompt_tokens includes cached_tokens)', () => {
    // 1,000 prompt tokens of which 600 cached, 50 output: 400×100 + 600×25 + 50×400 nano-dollars.
    expect(costOf(nano, { inputTokens: 1000, cachedTokens: 600, outputTokens: 50 })).toEqual({
      input: 40_000,
      cachedInput: 15_000,
      output: 20_000,
      total: 75_000,
    });
  });

  it('bills batch results at the Batch prices, without a cached price', () => {
    expect(costOf(nano, { inputTokens: 1000, cachedTokens: 600, outputTokens: 50 }, true)).toEqual({
      input: 50_000,
      cachedInput: 0,
      output: 10_000,
      total: 60_000,
    });
  });

  it('counts a model without prices at 0', () => {
    expect(costOf(undefined, { inputTokens: 10, cachedTokens: 0, outputTokens: 10 }).total).toBe(0);
  });

  it('stays exact beyond 2^53 intermediate products', () => {
    const prices = { input: 123_456_789_012, cachedInput: 0, output: 0, batchInput: 0, batchOutput: 0 };
    const tokens = 1_000_000_000;
    expect(costOf(prices, { inputTokens: tokens, cachedTokens: 0, outputTokens: 0 }).input).toBe(123_456_789_012_000);
  });
});
