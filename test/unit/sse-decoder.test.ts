import { describe, expect, it } from 'vitest';
import { SseDecoder, type SseEvent } from '../../src/streaming/sse.js';
import { prng } from '../helpers/prng.js';

// The decoder reads a copy of every streamed byte: it must produce the same events however the
// network cut the bytes, including inside multi-byte UTF-8 characters and CRLF pairs.

interface Ev {
  event: string | undefined;
  data: string;
}

function decode(pieces: readonly Buffer[], end = true): Ev[] {
  const events: Ev[] = [];
  const decoder = new SseDecoder((e: SseEvent) => events.push({ event: e.event, data: e.data }));
  for (const piece of pieces) decoder.push(piece);
  if (end) decoder.end();
  return events;
}


function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const sorted = [...new Set(cuts)].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let start = 0;
  for (const cut of sorted) {
    out.push(buf.subarray(start, cut));
    start = cut;
  }
  out.push(buf.subarray(start));
  return out;
}

// ---------------------------------------------------------------- fixtures

const chunk = (delta: object, finish: string | null, extra: object = {}) =>
  JSON.stringify({
    id: 'chatcmpl-abc',
    object: 'chat.completion.chunk',
    created: 1750000000,
    model: 'gpt-4.1-nano',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    usage: null,
    ...extra,
  });

const CHAT_DATA = [
  chunk({ role: 'assistant', content: '', refusal: null }, null),
  chunk({ content: 'héllo ' }, null),
  chunk({ content: 'wörld 👋 ' }, null),
  chunk({ content: 'ça va? 👋👋' }, null),
  chunk({}, 'stop'),
  JSON.stringify({
    id: 'chatcmpl-abc',
    object: 'chat.completion.chunk',
    choices: [],
    usage: { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16, prompt_tokens_details: { cached_tokens: 8 } },
  }),
  '[DONE]',
];

/** A chat stream as OpenAI frames it, with a keep-alive comment in between. */
const CHAT_TEXT =
  CHAT_DATA.slice(0, 2).map((d) => `data: ${d}\n\n`).join('') +
  ': ping\n\n' +
  CHAT_DATA.slice(2).map((d) => `data: ${d}\n\n`).join('');
const CHAT_EVENTS: Ev[] = CHAT_DATA.map((data) => ({ event: undefined, data }));

const RESPONSES_EVENTS: Ev[] = [
  ['response.created', { type: 'response.created', sequence_number: 0, response: { id: 'resp_1', status: 'in_progress' } }],
  ['response.output_text.delta', { type: 'response.output_text.delta', sequence_number: 1, delta: 'héllo ' }],
  ['response.output_text.delta', { type: 'response.output_text.delta', sequence_number: 2, delta: 'wörld 👋 ' }],
  ['response.output_text.done', { type: 'response.output_text.done', sequence_number: 3, text: 'héllo wörld 👋 ' }],
  [
    'response.completed',
    {
      type: 'response.completed',
      sequence_number: 4,
      response: { id: 'resp_1', status: 'completed', usage: { input_tokens: 7, input_tokens_details: { cached_tokens: 3 }, output_tokens: 5 } },
    },
  ],
].map(([event, body]) => ({ event: event as string, data: JSON.stringify(body) }));
const RESPONSES_TEXT = RESPONSES_EVENTS.map((e) => `event: ${e.event}\ndata: ${e.data}\n\n`).join('');

const crlf = (text: string) => text.replace(/\n/g, '\r\n');

const CASES: { name: string; bytes: Buffer; expected: Ev[] }[] = [
  { name: 'chat stream (LF)', bytes: Buffer.from(CHAT_TEXT), expected: CHAT_EVENTS },
  { name: 'chat stream (CRLF)', bytes: Buffer.from(crlf(CHAT_TEXT)), expected: CHAT_EVENTS },
  { name: 'responses stream (LF)', bytes: Buffer.from(RESPONSES_TEXT), expected: RESPONSES_EVENTS },
  { name: 'responses stream (CRLF)', bytes: Buffer.from(crlf(RESPONSES_TEXT)), expected: RESPONSES_EVENTS },
];

// ---------------------------------------------------------------- tests

describe('SseDecoder', () => {
  it('fixtures really contain multi-byte characters (4-byte emoji and 2-byte accents)', () => {
    const bytes = Buffer.from(CHAT_TEXT);
    expect(bytes.length).toBeGreaterThan(CHAT_TEXT.length);
    expect(bytes.includes(Buffer.from('👋'))).toBe(true);
    expect(Buffer.from('👋').length).toBe(4);
    expect(Buffer.from('é').length).toBe(2);
  });

  for (const { name, bytes, expected } of CASES) {
    describe(name, () => {
      it('decodes the stream in one piece', () => {
        expect(decode([bytes])).toEqual(expected);
      });

      it('yields the same events when split at every byte offset', () => {
        for (let i = 1; i < bytes.length; i++) {
          const events = decode([bytes.subarray(0, i), bytes.subarray(i)]);
          if (JSON.stringify(events) !== JSON.stringify(expected)) {
            expect({ splitAt: i, events }).toEqual({ splitAt: i, events: expected });
          }
        }
      });

      it('yields the same events fed one byte at a time', () => {
        const pieces: Buffer[] = [];
        for (let i = 0; i < bytes.length; i++) pieces.push(bytes.subarray(i, i + 1));
        expect(decode(pieces)).toEqual(expected);
      });

      it('yields the same events under random multi-splits (incl. empty pieces)', () => {
        const random = prng(0xc0ffee + bytes.length);
        for (let round = 0; round < 300; round++) {
          const n = 1 + Math.floor(random() * 25);
          const cuts = Array.from({ length: n }, () => Math.floor(random() * (bytes.length + 1)));
          const pieces = splitAt(bytes, cuts);
          if (round % 7 === 0) pieces.splice(1, 0, Buffer.alloc(0));
          const events = decode(pieces);
          if (JSON.stringify(events) !== JSON.stringify(expected)) {
            expect({ cuts, events }).toEqual({ cuts, events: expected });
          }
        }
      });
    });
  }

  it('splits inside every multi-byte character reassemble them intact', () => {
    const text = 'data: {"c":"é👋é👋ö"}\n\n';
    const bytes = Buffer.from(text);
    // every offset that falls strictly inside a UTF-8 sequence (continuation byte 10xxxxxx)
    const inside = [...bytes.keys()].filter((i) => ((bytes[i] ?? 0) & 0xc0) === 0x80);
    expect(inside.length).toBeGreaterThan(8);
    for (const i of inside) {
      const events = decode([bytes.subarray(0, i), bytes.subarray(i)]);
      expect(events).toEqual([{ event: undefined, data: '{"c":"é👋é👋ö"}' }]);
      expect(events[0]?.data).not.toContain('\uFFFD');
    }
  });

  it('joins multi-line data with LF and strips exactly one leading space', () => {
    const text = 'data: line one\ndata:line two\ndata:  indented\ndata\n\n';
    expect(decode([Buffer.from(text)])).toEqual([{ event: undefined, data: 'line one\nline two\n indented\n' }]);
    expect(decode([Buffer.from(crlf(text))])).toEqual([{ event: undefined, data: 'line one\nline two\n indented\n' }]);
  });

  it('ignores comments, id/retry/unknown fields and blocks without data', () => {
    const text = ': ping\n\n:\n\nid: 7\nretry: 1000\nfoo: bar\n\nevent: lonely\n\nid: 8\ndata: x\n\n';
    // the event name of a block without data must not leak into the next block
    expect(decode([Buffer.from(text)])).toEqual([{ event: undefined, data: 'x' }]);
  });

  it('resets the event name after each event', () => {
    const text = 'event: a\ndata: 1\n\ndata: 2\n\n';
    expect(decode([Buffer.from(text)])).toEqual([
      { event: 'a', data: '1' },
      { event: undefined, data: '2' },
    ]);
  });

  it('emits a final event without trailing blank line only on end()', () => {
    for (const tail of ['data: [DONE]', 'data: [DONE]\n', 'data: [DONE]\r\n', 'data: [DONE]\r']) {
      const bytes = Buffer.from(`data: {"a":"👋"}\n\n${tail}`);
      expect(decode([bytes], false)).toEqual([{ event: undefined, data: '{"a":"👋"}' }]);
      for (let i = 1; i < bytes.length; i++) {
        expect(decode([bytes.subarray(0, i), bytes.subarray(i)])).toEqual([
          { event: undefined, data: '{"a":"👋"}' },
          { event: undefined, data: '[DONE]' },
        ]);
      }
    }
  });

  it('emits a named final event on end() (responses stream cut before its blank line)', () => {
    const bytes = Buffer.from(RESPONSES_TEXT.slice(0, -2));
    expect(decode([bytes], false)).toEqual(RESPONSES_EVENTS.slice(0, -1));
    expect(decode([bytes])).toEqual(RESPONSES_EVENTS);
  });

  it('end() on an empty or fully consumed stream emits nothing more', () => {
    expect(decode([])).toEqual([]);
    expect(decode([Buffer.from('data: x\n\n')])).toEqual([{ event: undefined, data: 'x' }]);
  });
});
