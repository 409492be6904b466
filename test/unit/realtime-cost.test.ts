import { describe, expect, it } from 'vitest';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { costOf } from '../../src/usage/cost.js';

const catalogue = buildCatalogue(configFromObject({}));

describe('realtime cost by modality', () => {
  it('prices each modality of a gpt-realtime answer at its own published price, to the nano-dollar', () => {
    const prices = catalogue.resolve('gpt-realtime-2025-08-28')?.prices;
    const usage = {
      inputTokens: 1110,
      cachedTokens: 220,
      outputTokens: 550,
      realtime: { textIn: 100, audioIn: 1000, imageIn: 10, cachedText: 20, cachedAudio: 200, cachedImage: 0, textOut: 50, audioOut: 500 },
    };
    // text $4 / cached $0.40 / out $16; audio $32 / cached $0.40 / out $64; image $5 per 1M
    expect(costOf(prices, usage)).toEqual({
      input: 80 * 4_000 + 800 * 32_000 + 10 * 5_000,
      cachedInput: 20 * 400 + 200 * 400,
      output: 50 * 16_000 + 500 * 64_000,
      total: 25_970_000 + 88_000 + 32_800_000,
    });
  });

  it('prices a reservation (no split) at the dearest modality', () => {
    const prices = catalogue.resolve('gpt-realtime-mini')?.prices;
    // audio $10 in, $20 out per 1M
    expect(costOf(prices, { inputTokens: 1000, cachedTokens: 0, outputTokens: 100 }).total).toBe(1000 * 10_000 + 100 * 20_000);
  });

  it('carries the current realtime models and takes operator prices by modality', () => {
    for (const name of ['gpt-realtime', 'gpt-realtime-mini', 'gpt-4o-realtime-preview', 'gpt-4o-mini-realtime-preview']) {
      expect(catalogue.resolve(name)?.prices?.realtime).toBeDefined();
    }
    const custom = buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'gpt-realtime', price_per_1m: { input: 4, audio_input: '40' as unknown as number } }] } }));
    expect(custom.resolve('gpt-realtime')?.prices?.realtime).toMatchObject({ audioInput: 40_000_000_000, audioOutput: 64_000_000_000 });
    expect(catalogue.resolve('gpt-4.1-nano')?.prices?.realtime).toBeUndefined();
  });
});
