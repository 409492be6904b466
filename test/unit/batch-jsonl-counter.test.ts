// The JSONL token counter of batch input files (issue 3, point 6): the same count whatever the
// chunk boundaries (inside a line, inside a multi-byte character, at the newline itself).
import { describe, expect, it } from 'vitest';
import { JsonlTokenCounter, type JsonlCount } from '../../src/batch/jsonl-counter.js';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';

const ALIASES: Record<string, string> = { 'gpt-4.1-nano-2025-04-14': 'gpt-4.1-nano' };
const resolveModel = (model: string): string => ALIASES[model] ?? model;
const newCounter = (maxLineBytes?: number) => new JsonlTokenCounter({ charsPerToken: 4, resolveModel, maxLineBytes });

const line = (id: string, body: Record<string, unknown>) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body });

// Multi-byte on purpose: 2-byte (é, ö), 3-byte (€), 4-byte (👋, a surrogate pair in UTF-16).
const LINES = [
  line('r1', { model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'héllo wörld 👋 €' }], max_tokens: 16 }),
  line('r2', { model: 'gpt-4.1-nano-2025-04-14', messages: [{ role: 'user', content: '👋👋👋 ok' }], max_completion_tokens: 32 }),
  line('r3', { model: 'gpt-4.1-mini', input: 'ünïcödé input €€', max_output_tokens: 8 }),
  line('r4', { model: 'gpt-4.1-nano', messages: [{ role: 'system', content: 'sé' }, { role: 'user', content: 'plain' }] }),
];
// A byte-order mark, CRLF endings, a blank line and no final newline.
const FILE = Buffer.from(`\uFEFF${LINES[0]}\r\n${LINES[1]}\n\n${LINES[2]}\r\n${LINES[3]}`, 'utf8');

/** The count computed without streaming: the file parsed whole. */
function reference(): JsonlCount {
  const models = new Map<string, { tokens: number; outputCap: number; requests: number }>();
  for (const text of LINES) {
    const body = (JSON.parse(text) as { body: Record<string, unknown> }).body;
    const model = resolveModel(body.model as string);
    const cap = (body.max_completion_tokens ?? body.max_tokens ?? body.max_output_tokens ?? 0) as number;
    const entry = models.get(model) ?? { tokens: 0, outputCap: 0, requests: 0 };
    entry.tokens += estimateTokens(promptChars(body), 4);
    entry.outputCap += cap;
    entry.requests += 1;
    models.set(model, entry);
  }
  return { valid: true, lines: LINES.length, models: [...models].map(([model, c]) => ({ model, ...c })) };
}

function count(chunks: Buffer[], maxLineBytes?: number): JsonlCount {
  const counter = newCounter(maxLineBytes);
  for (const chunk of chunks) counter.push(chunk);
  return counter.end();
}

describe('JSONL token counter', () => {
  const expected = reference();

  it('counts estimated input tokens, output caps and requests per model (aliases resolved)', () => {
    const result = count([FILE]);
    expect(result).toEqual(expected);
    // The documented rule on one line by hand: chars of role + "user" + content + text, / 4, rounded up.
    const r4 = { model: 'gpt-4.1-nano', messages: [{ role: 'system', content: 'sé' }, { role: 'user', content: 'plain' }] };
    expect(promptChars(r4)).toBe(4 + 6 + 7 + 2 + 4 + 4 + 7 + 5);
    expect(result.models.map((m) => m.model)).toEqual(['gpt-4.1-nano', 'gpt-4.1-mini']);
    expect(result.models[0]?.requests).toBe(3);
    expect(result.models[0]?.outputCap).toBe(48);
  });

  it('gives the same count for every split of the file into two chunks', () => {
    for (let i = 0; i <= FILE.length; i++) {
      expect(count([FILE.subarray(0, i), FILE.subarray(i)]), `split at ${i}`).toEqual(expected);
    }
  });

  it('gives the same count for every split into three chunks', () => {
    const step = 3;
    for (let i = 0; i <= FILE.length; i += step) {
      for (let j = i; j <= FILE.length; j += step) {
        expect(count([FILE.subarray(0, i), FILE.subarray(i, j), FILE.subarray(j)]), `splits at ${i}, ${j}`).toEqual(expected);
      }
    }
  });

  it('gives the same count one byte at a time', () => {
    const bytes: Buffer[] = [];
    for (let i = 0; i < FILE.length; i++) bytes.push(FILE.subarray(i, i + 1));
    expect(count(bytes)).toEqual(expected);
  });

  it('counts a final line with and without its newline alike', () => {
    expect(count([Buffer.concat([FILE, Buffer.from('\n')])])).toEqual(expected);
  });

  it('is not a valid batch file when a line is not JSON, has no body or no model', () => {
    const bad = [
      `${LINES[0]}\n{"custom_id": "r2", "body": {"model": "gpt-4.1-nano"\n`,
      `${LINES[0]}\n${JSON.stringify({ custom_id: 'r2', method: 'POST', url: '/v1/chat/completions' })}\n`,
      `${LINES[0]}\n${JSON.stringify({ custom_id: 'r2', body: { messages: [] } })}\n`,
      `${LINES[0]}\n[1, 2, 3]\n`,
    ];
    for (const text of bad) expect(count([Buffer.from(text)]), text).toMatchObject({ valid: false, models: [] });
  });

  it('more than 16 distinct models is no batch file (OpenAI takes one per file); 16 are counted', () => {
    const lines = (n: number) => Array.from({ length: n }, (_, i) => line(`r${i}`, { model: `model-${i}`, input: 'x' })).join('\n');
    expect(count([Buffer.from(lines(16))]).models).toHaveLength(16);
    expect(count([Buffer.from(lines(17))])).toMatchObject({ valid: false, models: [] });
  });

  it('gives up at once on a file that does not start with an object (binary uploads cost nothing)', () => {
    const counter = newCounter();
    counter.push(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]));
    expect(counter.viable).toBe(false);
    expect(counter.end()).toEqual({ valid: false, lines: 0, models: [] });
  });

  it('an empty file is not a batch file', () => {
    expect(count([Buffer.from('\n\n')])).toEqual({ valid: false, lines: 0, models: [] });
  });

  it('counts a line longer than maxLineBytes by its bytes without holding it, attributed to the model it names', () => {
    const long = line('big', { model: 'gpt-4.1-nano-2025-04-14', messages: [{ role: 'user', content: 'x'.repeat(400) }] });
    const short = line('s', { model: 'gpt-4.1-mini', input: 'hi' });
    const text = `${short}\n${long}\n`;
    const shortTokens = estimateTokens(promptChars(JSON.parse(short).body), 4);
    const longTokens = Math.ceil(Buffer.byteLength(long) / 4);
    for (let i = 0; i <= text.length; i += 7) {
      const result = count([Buffer.from(text.slice(0, i)), Buffer.from(text.slice(i))], 150);
      expect(result, `split at ${i}`).toEqual({
        valid: true,
        lines: 2,
        models: [
          { model: 'gpt-4.1-mini', tokens: shortTokens, outputCap: 0, requests: 1 },
          { model: 'gpt-4.1-nano', tokens: longTokens, outputCap: 0, requests: 1 },
        ],
      });
    }
  });

  it('attributes an overlong line whose model lies beyond its kept head to the file’s most frequent model', () => {
    // 70,000 characters before `model`: beyond the 64 KiB head kept of an overlong line.
    const long = JSON.stringify({ custom_id: 'big', body: { messages: [{ role: 'user', content: 'y'.repeat(70_000) }], model: 'gpt-4.1-mini' } });
    const mini = line('m', { model: 'gpt-4.1-mini', input: 'hi' });
    const text = `${LINES[0]}\n${LINES[3]}\n${mini}\n${long}\n`;
    const result = count([Buffer.from(text)], 1000);
    const base = count([Buffer.from(`${LINES[0]}\n${LINES[3]}\n${mini}\n`)]);
    const nanoBase = base.models.find((m) => m.model === 'gpt-4.1-nano');
    expect(result.valid).toBe(true);
    expect(result.models.find((m) => m.model === 'gpt-4.1-nano')).toEqual({
      ...nanoBase,
      tokens: (nanoBase?.tokens ?? 0) + Math.ceil(Buffer.byteLength(long) / 4),
      requests: 3,
    });
    expect(result.models.find((m) => m.model === 'gpt-4.1-mini')).toEqual(base.models.find((m) => m.model === 'gpt-4.1-mini'));
    // Alone, it cannot be attributed: not a batch file tollgate can count.
    expect(count([Buffer.from(`${long}\n`)], 1000)).toMatchObject({ valid: false });
  });
});
