import { countTokens as cl100kCount } from 'gpt-tokenizer/encoding/cl100k_base';
import { countTokens as o200kCount } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { countTokensExactly, MAX_QUEUED_COUNTS, tokenUpperBound } from '../../src/tokens/exact.js';
import { estimateTokens, promptChars, promptText } from '../../src/tokens/estimate.js';

// promptChars is checked by differences: growing one model-visible string by N characters must
// grow the count by exactly N, and growing a non-visible one must not change it.

const pad = (n: number, ch = 'x') => ch.repeat(n);
const delta = (make: (text: string) => Record<string, unknown>, n = 1000): number => promptChars(make(pad(n))) - promptChars(make(''));

describe('promptChars', () => {
  it('counts message content (string content)', () => {
    expect(delta((t) => ({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: t }] }))).toBe(1000);
    expect(
      delta((t) => ({
        messages: [
          { role: 'system', content: t },
          { role: 'user', content: t },
        ],
      })),
    ).toBe(2000);
  });

  it('counts text content parts and skips image_url data', () => {
    const parts = (text: string, url: string) => ({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text },
            { type: 'image_url', image_url: { url, detail: 'low' } },
          ],
        },
      ],
    });
    expect(promptChars(parts(pad(1000), '')) - promptChars(parts('', ''))).toBe(1000);
    const dataUrl = `data:image/png;base64,${pad(200_000, 'A')}`;
    expect(promptChars(parts('hi', dataUrl))).toBe(promptChars(parts('hi', '')));
    expect(promptChars(parts('hi', dataUrl))).toBeLessThan(200);
  });

  it('skips input_image / input_audio / file data in responses input', () => {
    const input = (text: string, blob: string) => ({
      input: [
        {
          role: 'user',
          content: [
            { type: 'input_text', text },
            { type: 'input_image', image_url: blob },
            { type: 'input_file', file_data: blob, filename: 'a.pdf' },
            { type: 'input_audio', input_audio: { data: blob, format: 'wav' } },
          ],
        },
      ],
    });
    expect(promptChars(input(pad(500), '')) - promptChars(input('', ''))).toBe(500);
    expect(promptChars(input('hi', pad(100_000, 'B')))).toBe(promptChars(input('hi', '')));
  });

  it('counts tools (names, descriptions, parameter schemas)', () => {
    const tools = (t: string) => ({
      messages: [{ role: 'user', content: 'hi' }],
      tools: [{ type: 'function', function: { name: 'get_weather', description: t, parameters: { type: 'object', properties: { city: { type: 'string', description: t } } } } }],
    });
    expect(delta(tools)).toBe(2000);
  });

  it('counts the response_format schema', () => {
    const rf = (t: string) => ({
      messages: [{ role: 'user', content: 'hi' }],
      response_format: { type: 'json_schema', json_schema: { name: 'out', schema: { type: 'object', description: t } } },
    });
    expect(delta(rf)).toBe(1000);
  });

  it('counts input (string and items), prompt (string and array) and instructions', () => {
    expect(delta((t) => ({ input: t }))).toBe(1000);
    expect(delta((t) => ({ input: [{ role: 'user', content: [{ type: 'input_text', text: t }] }] }))).toBe(1000);
    expect(delta((t) => ({ prompt: t }))).toBe(1000);
    expect(delta((t) => ({ prompt: [t, t, t] }))).toBe(3000);
    expect(delta((t) => ({ input: 'hi', instructions: t }))).toBe(1000);
  });

  it('does not count fields the model does not read', () => {
    const base = { model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] };
    const extra = { ...base, user: pad(500), metadata: { note: pad(500) }, temperature: 0.5, stop: ['x'], model: pad(500) };
    expect(promptChars(extra)).toBe(promptChars(base));
    expect(promptChars({ model: 'gpt-4.1-nano', temperature: 1 })).toBe(0);
  });

  it('a plain request is in the expected range (content plus a small structural overhead)', () => {
    const chars = promptChars({ messages: [{ role: 'user', content: pad(4000) }] });
    expect(chars).toBeGreaterThanOrEqual(4000);
    expect(chars).toBeLessThan(4100);
  });

  it('survives deep nesting without throwing', () => {
    let deep: unknown = pad(10);
    for (let i = 0; i < 10_000; i++) deep = { a: deep };
    expect(() => promptChars({ tools: [deep] })).not.toThrow();
    expect(() => promptText({ tools: [deep] })).not.toThrow();
  });

  it('promptText contains the visible text and not the skipped payloads', () => {
    const text = promptText({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'visible words' }, { type: 'image_url', image_url: { url: 'data:SECRETBLOB' } }] }],
      instructions: 'be brief',
    });
    expect(text).toContain('visible words');
    expect(text).toContain('be brief');
    expect(text).not.toContain('SECRETBLOB');
  });
});

describe('estimateTokens', () => {
  it('rounds up characters / chars_per_token', () => {
    const cases: [number, number, number][] = [
      [0, 4, 0],
      [1, 4, 1],
      [3, 4, 1],
      [4, 4, 1],
      [5, 4, 2],
      [8, 4, 2],
      [9, 4, 3],
      [4_190_304, 4, 1_047_576],
      [4_190_305, 4, 1_047_577],
      [7, 3.5, 2],
      [8, 3.5, 3],
    ];
    for (const [chars, perToken, tokens] of cases) expect({ chars, perToken, tokens: estimateTokens(chars, perToken) }).toEqual({ chars, perToken, tokens });
  });
});

describe('countTokensExactly (o200k_base)', () => {
  it('"hello world" is 2 tokens, as gpt-tokenizer says', async () => {
    expect(o200kCount('hello world')).toBe(2);
    expect(await countTokensExactly('hello world')).toBe(2);
    expect(await countTokensExactly('')).toBe(0);
  });

  it('uses o200k_base, not cl100k_base (texts where the two differ)', async () => {
    for (const text of ['Привет, как дела? Это тест.', '你好，世界！今天天气很好。', 'héllo wörld 👋']) {
      const exact = await countTokensExactly(text);
      expect(exact).toBe(o200kCount(text));
      expect(exact).not.toBe(cl100kCount(text));
    }
    expect(await countTokensExactly('Привет, как дела? Это тест.')).toBe(9);
  });

  it('counts a long text like the reference tokenizer', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(500);
    expect(await countTokensExactly(text)).toBe(o200kCount(text));
  });

  it('counts parts joined by newlines, across slices that split a surrogate pair', async () => {
    // 1 Mi characters per slice: the emoji's two UTF-16 halves land in different slices.
    const long = 'word '.repeat(1 << 18).slice(0, (1 << 20) - 1) + '👋' + ' tail';
    const parts = ['user', long, 'second'];
    expect(await countTokensExactly(parts)).toBe(o200kCount(parts.join('\n')));
    expect(tokenUpperBound(parts)).toBe(Buffer.byteLength(parts.join('\n')));
  });

  it('queues at most MAX_QUEUED_COUNTS counts; beyond, a 503 to retry', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(200);
    const queued = Array.from({ length: MAX_QUEUED_COUNTS }, () => countTokensExactly(text));
    await expect(countTokensExactly(text)).rejects.toMatchObject({ status: 503, code: 'service_unavailable' });
    for (const count of await Promise.all(queued)) expect(count).toBe(o200kCount(text));
    // Served again once the queue has drained.
    expect(await countTokensExactly('hello world')).toBe(2);
  });
});
