import { describe, expect, it } from 'vitest';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { costOf } from '../../src/usage/cost.js';
import { quoteUnits, type UnitKind, type UnitQuote } from '../../src/usage/units.js';

const catalogue = buildCatalogue(configFromObject({}));

function quote(kind: UnitKind, model: string, params: Record<string, unknown>, fileBytes = 0, config = catalogue): UnitQuote {
  const quoted = quoteUnits(kind, config.resolve(model)?.prices?.units, { param: (name) => params[name], fileBytes, charsPerToken: 4 });
  if (!quoted) throw new Error(`${model} has no ${kind} price`);
  return quoted;
}
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const NONE = Buffer.alloc(0);
/** Cost of the reservation, and of the answer's bill (the reservation when it states none). */
const reserved = (q: UnitQuote): number => costOf(undefined, q.reserved).total;
const billed = (q: UnitQuote, head: Buffer, tail = head): number => costOf(undefined, q.settle(head, tail) ?? q.reserved).total;

describe('unit prices (integer nano-dollars)', () => {
  it('dall-e-3 per image by quality and size, n images; unknown sizes at the dearest price', () => {
    expect(reserved(quote('images', 'dall-e-3', { prompt: 'x' }))).toBe(40_000_000);
    expect(reserved(quote('images', 'dall-e-3', { quality: 'hd', size: '1024x1792' }))).toBe(120_000_000);
    expect(reserved(quote('images', 'dall-e-2', { size: '256x256', n: 3 }))).toBe(3 * 16_000_000);
    // A form field's digits count as n; a size the table does not list takes the dearest one that fits.
    expect(reserved(quote('images', 'dall-e-2', { size: '4096x4096', n: '2' }))).toBe(2 * 20_000_000);
    const q = quote('images', 'dall-e-3', { quality: 'standard', size: '1792x1024' });
    expect(q.reserved.billed).toMatchObject({ unit: 'images', quantity: 1 });
    expect(billed(q, json({ data: [{}] }))).toBe(80_000_000);
  });

  it('gpt-image-1: reserves the prompt estimate + n × the image output tokens of the quality and size (auto: the largest); bills the reported usage', () => {
    // 40 characters = 10 text tokens × 5,000 + 2 × 1,056 medium 1024x1024 tokens × 40,000.
    const q = quote('images', 'gpt-image-1', { prompt: 'p'.repeat(40), quality: 'medium', size: '1024x1024', n: 2 });
    expect(reserved(q)).toBe(10 * 5_000 + 2 * 1_056 * 40_000);
    expect(reserved(quote('images', 'gpt-image-1', { prompt: 'p'.repeat(40), quality: 'auto', size: 'auto' }))).toBe(10 * 5_000 + 6_240 * 40_000);
    expect(reserved(quote('images', 'gpt-image-1', { prompt: 'p'.repeat(40), quality: 'low' }))).toBe(10 * 5_000 + 408 * 40_000);
    // An edit: 50 text + 300 image input tokens ($10 per 1M), 4,160 output tokens.
    const usage = { input_tokens: 350, input_tokens_details: { text_tokens: 50, image_tokens: 300 }, output_tokens: 4_160, total_tokens: 4_510 };
    expect(billed(q, NONE, json({ created: 1, data: [{ b64_json: 'AAAA' }], usage }))).toBe(50 * 5_000 + 300 * 10_000 + 4_160 * 40_000);
    expect(q.settle(NONE, json({ usage }))).toMatchObject({ inputTokens: 350, outputTokens: 4_160, billed: { unit: 'tokens' } });
    // A stream or an answer without usage: the reservation stands.
    expect(q.settle(NONE, json({ data: [] }))).toBeUndefined();
  });

  it('speech: tts-1 and tts-1-hd per character (code points); gpt-4o-mini-tts billed at its estimate', () => {
    expect(reserved(quote('speech', 'tts-1', { input: 'Hello' }))).toBe(5 * 15_000);
    expect(reserved(quote('speech', 'tts-1-hd', { input: 'héllo 👋' }))).toBe(7 * 30_000);
    const mini = quote('speech', 'gpt-4o-mini-tts', { input: 'a'.repeat(100), instructions: 'b'.repeat(20) });
    // 120 characters of text = 30 tokens × 600 + 100 characters × 2 audio tokens × 12,000.
    expect(reserved(mini)).toBe(30 * 600 + 200 * 12_000);
    expect(mini.settle(NONE, NONE)).toBeUndefined();
    // A stream's last event reports usage: billed.
    const done = Buffer.from(`data: {"type":"speech.audio.delta","audio":"AAAA"}\n\ndata: {"type":"speech.audio.done","usage":{"input_tokens":31,"output_tokens":150,"total_tokens":181}}\n\n`);
    expect(billed(mini, NONE, done)).toBe(31 * 600 + 150 * 12_000);
  });

  it('whisper-1: reserved by upload bytes at 4,000 a second; billed by the reported duration, to the nearest second', () => {
    const q = quote('transcription', 'whisper-1', {}, 400_000);
    // 100 s at $0.006 a minute = 100,000 nano a second.
    expect(reserved(q)).toBe(100 * 100_000);
    expect(billed(q, NONE, json({ text: 'hi', usage: { type: 'duration', seconds: 12 } }))).toBe(12 * 100_000);
    expect(billed(q, json({ task: 'transcribe', language: 'english', duration: 7.6, text: 'hi', segments: [] }), NONE)).toBe(8 * 100_000);
    // Plain text (text, srt, vtt) states nothing: the reservation is billed.
    expect(q.settle(Buffer.from('hi\n'), Buffer.from('hi\n'))).toBeUndefined();
    // An operator's bytes-per-second makes the reservation fit their audio.
    const custom = buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'whisper-1', unit_prices: { audio_bytes_per_second: 16_000 } }] } }));
    expect(reserved(quote('transcription', 'whisper-1', {}, 400_000, custom))).toBe(25 * 100_000);
    expect(custom.resolve('whisper-1')?.prices?.units?.perMinute).toBe(6_000_000);
  });

  it('gpt-4o-transcribe: reserved per minute; billed by text and audio input and text output tokens', () => {
    const q = quote('transcription', 'gpt-4o-transcribe', {}, 240_000);
    expect(reserved(q)).toBe(60 * 100_000);
    const usage = { type: 'tokens', input_tokens: 1_020, input_token_details: { text_tokens: 20, audio_tokens: 1_000 }, output_tokens: 300, total_tokens: 1_320 };
    expect(billed(q, NONE, json({ text: 'x', usage }))).toBe(20 * 2_500 + 1_000 * 6_000 + 300 * 10_000);
  });

  it('videos: seconds × the per-second price of the size; the job in the answer settles it', () => {
    expect(reserved(quote('video', 'sora-2', {}))).toBe(4 * 100_000_000);
    expect(reserved(quote('video', 'sora-2-pro', { seconds: '12', size: '1792x1024' }))).toBe(12 * 500_000_000);
    expect(reserved(quote('video', 'sora-2-pro', { seconds: 8, size: '9999x9999' }))).toBe(8 * 500_000_000);
    const q = quote('video', 'sora-2', { seconds: '8' });
    expect(billed(q, json({ id: 'video_1', object: 'video', model: 'sora-2', status: 'queued', size: '1280x720', seconds: '4' }))).toBe(4 * 100_000_000);
  });

  it('a model without a price in the unit is not quoted; operators override and add unit prices', () => {
    expect(quoteUnits('images', catalogue.resolve('gpt-4.1-nano')?.prices?.units, { param: () => undefined, fileBytes: 0, charsPerToken: 4 })).toBeUndefined();
    expect(quoteUnits('speech', catalogue.resolve('dall-e-3')?.prices?.units, { param: () => undefined, fileBytes: 0, charsPerToken: 4 })).toBeUndefined();
    const custom = buildCatalogue(
      configFromObject({ models: { catalogue: [{ name: 'dall-e-3', unit_prices: { per_image: { 'standard:1024x1024': 0.05 } } }, { name: 'my-tts', unit_prices: { per_1m_characters: 20 } }] } }),
    );
    expect(reserved(quote('images', 'dall-e-3', {}, 0, custom))).toBe(50_000_000);
    expect(reserved(quote('speech', 'my-tts', { input: 'abcd' }, 0, custom))).toBe(4 * 20_000);
  });

  it('containers: one session at the price of its memory limit (default 1g; an unknown limit at the dearest); operators override', () => {
    const of = (params: Record<string, unknown>, config = catalogue): number =>
      reserved(quoteUnits('containers', config.containers, { param: (name) => params[name], fileBytes: 0, charsPerToken: 4 }) as UnitQuote);
    expect(of({})).toBe(30_000_000);
    expect(of({ memory_limit: '16g' })).toBe(480_000_000);
    expect(of({ memory_limit: '128g' })).toBe(1_920_000_000);
    const custom = buildCatalogue(configFromObject({ models: { container_prices: { '1g': 0.05 } } }));
    expect(of({}, custom)).toBe(50_000_000);
    expect(of({ memory_limit: '4g' }, custom)).toBe(120_000_000);
  });
});
