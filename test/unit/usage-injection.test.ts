import { PassThrough, Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamErrorEvent, UpstreamInterruptedError } from '../../src/errors/errors.js';
import type { UsageShape } from '../../src/usage/shape.js';
import { relaySse, type StreamOutcome } from '../../src/streaming/relay.js';
import { canInjectUsage, InjectedUsageStripper, injectUsageRequest } from '../../src/streaming/usage-injection.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { prng } from '../helpers/prng.js';

// Tollgate asks the upstream for usage on the client's behalf and must hand the client exactly the
// stream it would have got without include_usage. The streams compared here are the fake upstream's
// own answers to the same request, once with and once without stream_options.include_usage.

const PROMPT_TOKENS = 1234;
const CACHED_TOKENS = 1024;
const CHUNKS = 30;

interface Pair {
  /** The upstream's answer with include_usage, its ids set to those of `plain` (see `fetchPair`). */
  withUsage: Buffer;
  /** The upstream's answer to the same request without include_usage. */
  plain: Buffer;
  /** What the usage chunk says. */
  usage: Record<string, unknown>;
}

let upstream: FakeUpstream;
let chat: Pair;
let legacy: Pair;

async function fetchStream(path: string, body: object): Promise<Buffer> {
  const res = await fetch(`${upstream.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-fake-chunks': String(CHUNKS),
      'x-fake-prompt-tokens': String(PROMPT_TOKENS),
      'x-fake-cached-tokens': String(CACHED_TOKENS),
    },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  return Buffer.from(await res.arrayBuffer());
}

const firstId = (stream: Buffer): string => /"id":"([^"]+)"/.exec(stream.toString('utf8'))?.[1] ?? '';

/**
 * The same request with and without include_usage. The fake derives its ids from a hash of the
 * request body, which include_usage changes, so the two answers differ in their (equally long) id;
 * real OpenAI ids are random anyway. The with-usage stream gets the plain stream's id, byte for
 * byte, and nothing else is touched.
 */
async function fetchPair(path: string, body: object): Promise<Pair> {
  const plain = await fetchStream(path, { ...body, stream: true });
  const raw = await fetchStream(path, { ...body, stream: true, stream_options: { include_usage: true } });
  const [from, to] = [firstId(raw), firstId(plain)];
  expect(from).not.toBe('');
  expect(to.length).toBe(from.length);
  const withUsage = Buffer.from(raw.toString('utf8').replaceAll(from, to));
  expect(withUsage.length).toBe(raw.length);
  const usageLine = withUsage.toString('utf8').split('\n').find((l) => l.includes('"choices":[]'));
  const usage = (JSON.parse(usageLine!.slice('data: '.length)) as { usage: Record<string, unknown> }).usage;
  return { withUsage, plain, usage };
}

beforeAll(async () => {
  upstream = await startFakeUpstream();
  chat = await fetchPair('/chat/completions', { model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'Say hello to the wörld 👋' }] });
  legacy = await fetchPair('/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hello to the wörld 👋' });
});
afterAll(async () => {
  await upstream?.close();
});

/** Run bytes, cut into `pieces`, through a fresh stripper; the output and every usage reported. */
function strip(pieces: readonly Buffer[], end = true): { out: Buffer; usages: Record<string, unknown>[] } {
  const usages: Record<string, unknown>[] = [];
  const stripper = new InjectedUsageStripper((u) => usages.push(u));
  const out: Buffer[] = [];
  // each piece in memory of its own, as a socket would hand it over
  for (const piece of pieces) out.push(stripper.push(Buffer.from(piece)));
  if (end) out.push(stripper.end());
  return { out: Buffer.concat(out), usages };
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


const crlf = (buf: Buffer): Buffer => Buffer.from(buf.toString('utf8').replaceAll('\n', '\r\n'));

/** A byte-mode upstream body that yields `chunks`, then ends or fails with `failWith`. */
function upstreamOf(chunks: readonly Buffer[], failWith?: Error): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i < chunks.length) this.push(chunks[i++]);
      else if (failWith) this.destroy(failWith);
      else this.push(null);
    },
  });
}

async function readAll(readable: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of readable as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function relay(
  body: Readable,
  shape: UsageShape,
  stripInjectedUsage: boolean | undefined,
): { output: PassThrough; ended: Promise<StreamOutcome>; outcomes: StreamOutcome[] } {
  const output = new PassThrough();
  const outcomes: StreamOutcome[] = [];
  let resolve!: (o: StreamOutcome) => void;
  const ended = new Promise<StreamOutcome>((r) => (resolve = r));
  relaySse(body, output, {
    shape,
    stripInjectedUsage,
    mapError: () => new UpstreamInterruptedError(),
    onEnd: (o) => {
      outcomes.push(o);
      resolve(o);
    },
  });
  return { output, ended, outcomes };
}

describe('the fixtures (the fake upstream with and without include_usage)', () => {
  it('differ exactly by the usage chunk and a "usage":null in every chunk', () => {
    for (const pair of [chat, legacy]) {
      const withText = pair.withUsage.toString('utf8');
      const events = withText.split('\n\n').filter(Boolean);
      expect(events.length).toBeGreaterThanOrEqual(CHUNKS + 2);
      expect(withText.split(',"usage":null}').length - 1).toBe(events.length - 2); // all but the usage chunk and [DONE]
      expect(pair.plain.includes('"usage"')).toBe(false);
      expect(pair.withUsage.equals(pair.plain)).toBe(false);
      expect(pair.withUsage.includes(Buffer.from('👋'))).toBe(true);
      expect(pair.usage).toMatchObject({ prompt_tokens: PROMPT_TOKENS, completion_tokens: CHUNKS });
    }
    expect(chat.usage).toMatchObject({ prompt_tokens_details: { cached_tokens: CACHED_TOKENS } });
  });
});

describe('InjectedUsageStripper', () => {
  for (const [name, pair, framing] of [
    ['chat', () => chat, (b: Buffer) => b],
    ['legacy completions', () => legacy, (b: Buffer) => b],
    ['chat, CRLF framing', () => chat, crlf],
    ['legacy completions, CRLF framing', () => legacy, crlf],
  ] as const) {
    describe(name, () => {
      it('in one piece: the plain stream byte for byte, the usage reported once', () => {
        const { withUsage, plain, usage } = pair();
        const { out, usages } = strip([framing(withUsage)]);
        expect(out.toString('utf8')).toBe(framing(plain).toString('utf8'));
        expect(out.equals(framing(plain))).toBe(true);
        expect(usages).toEqual([usage]);
      });

      it('split into two chunks at every byte offset (inside characters, CRLF pairs and "usage":null)', () => {
        const input = framing(pair().withUsage);
        const expected = framing(pair().plain);
        const usage = pair().usage;
        for (let i = 0; i <= input.length; i++) {
          const { out, usages } = strip([input.subarray(0, i), input.subarray(i)]);
          if (!out.equals(expected) || usages.length !== 1) {
            expect({ splitAt: i, out: out.toString('utf8'), usages }).toEqual({ splitAt: i, out: expected.toString('utf8'), usages: [usage] });
          }
        }
      });

      it('random multi-splits, one byte at a time, and empty pieces', () => {
        const input = framing(pair().withUsage);
        const expected = framing(pair().plain);
        const random = prng(0x5eed + input.length);
        const runs: Buffer[][] = [[...input].map((b) => Buffer.from([b]))];
        for (let round = 0; round < 400; round++) {
          const n = 1 + Math.floor(random() * 60);
          const pieces = splitAt(input, Array.from({ length: n }, () => Math.floor(random() * (input.length + 1))));
          if (round % 5 === 0) pieces.splice(1, 0, Buffer.alloc(0));
          runs.push(pieces);
        }
        for (const pieces of runs) {
          const { out, usages } = strip(pieces);
          if (!out.equals(expected) || usages.length !== 1) {
            expect({ sizes: pieces.map((p) => p.length), out: out.toString('utf8'), usages: usages.length }).toEqual({
              sizes: pieces.map((p) => p.length),
              out: expected.toString('utf8'),
              usages: 1,
            });
          }
        }
      });

      it('a stream cut anywhere: the output is a byte-prefix of the plain stream; usage only once the usage chunk is whole', () => {
        const input = framing(pair().withUsage);
        const expected = framing(pair().plain);
        const text = input.toString('latin1');
        const usageStart = text.lastIndexOf('data: {');
        const usageJsonEnd = text.indexOf('}\n', usageStart) === -1 ? text.indexOf('}\r\n', usageStart) + 1 : text.indexOf('}\n', usageStart) + 1;
        expect(usageStart).toBeGreaterThan(0);
        expect(text.slice(usageStart, usageJsonEnd)).toMatch(/"choices":\[\],"usage":\{.*\}$/);
        const cuts = [...Array(input.length + 1).keys()];
        for (const cut of cuts) {
          const { out, usages } = strip([input.subarray(0, cut)]);
          const prefix = out.length <= expected.length && out.equals(expected.subarray(0, out.length));
          const wantUsages = cut >= usageJsonEnd ? 1 : 0;
          if (!prefix || usages.length !== wantUsages) {
            expect({ cut, out: out.toString('utf8'), usages: usages.length }).toEqual({
              cut,
              out: expected.subarray(0, out.length).toString('utf8'),
              usages: wantUsages,
            });
          }
        }
      });

      it('a stream cut at an event boundary before the usage chunk: exactly the plain events so far', () => {
        const input = framing(pair().withUsage);
        const expected = framing(pair().plain);
        const blank = input.includes('\r\n') ? '\r\n\r\n' : '\n\n';
        const withEvents = input.toString('utf8').split(blank).slice(0, -1);
        const plainEvents = expected.toString('utf8').split(blank).slice(0, -1);
        expect(withEvents.length).toBe(plainEvents.length + 1);
        for (let k = 0; k <= plainEvents.length - 1; k++) {
          // k whole events (the usage chunk is event number plainEvents.length - 1)
          const cut = Buffer.byteLength(withEvents.slice(0, k).map((e) => e + blank).join(''));
          const { out, usages } = strip([input.subarray(0, cut)]);
          expect(out.toString('utf8'), `after ${k} events`).toBe(plainEvents.slice(0, k).map((e) => e + blank).join(''));
          expect(usages).toEqual([]);
        }
      });
    });
  }

  it('a push that threw part-way (its usage callback failed) leaves nothing behind for the next', () => {
    let calls = 0;
    const stripper = new InjectedUsageStripper(() => {
      if (calls++ === 0) throw new Error('reader failed');
    });
    const a = 'data: {"id":"a","choices":[{"delta":{}}],"usage":null}\n\n';
    const usage = 'data: {"id":"a","choices":[],"usage":{"prompt_tokens":1}}\n\n';
    expect(() => stripper.push(Buffer.from(a + usage))).toThrow('reader failed');
    const b = 'data: {"id":"b","choices":[{"delta":{}}],"usage":null}\n\n';
    expect(stripper.push(Buffer.from(b)).toString('utf8')).toBe('data: {"id":"b","choices":[{"delta":{}}]}\n\n');
  });

  it('emits each event the moment its blank line arrives, holds back only an unfinished event', () => {
    const stripper = new InjectedUsageStripper();
    const first = 'data: {"id":"x","choices":[{"delta":{"content":"👋"}}],"usage":null}\n\n';
    const bytes = Buffer.from(first + 'data: {"id":"x","choi');
    const cut = Buffer.from(first).length - 1; // just before the second LF of the blank line
    expect(stripper.push(bytes.subarray(0, cut)).length).toBe(0);
    expect(stripper.push(bytes.subarray(cut)).toString('utf8')).toBe('data: {"id":"x","choices":[{"delta":{"content":"👋"}}]}\n\n');
    expect(stripper.push(Buffer.from('ces":[],"usage":null}\n')).length).toBe(0);
    expect(stripper.push(Buffer.from('\n')).toString('utf8')).toBe('data: {"id":"x","choices":[]}\n\n');
  });

  it('"usage":null as first, middle or last member, with or without white space', () => {
    const cases: [string, string][] = [
      ['{"id":"a","choices":[{"index":0}],"usage":null}', '{"id":"a","choices":[{"index":0}]}'],
      ['{"usage":null,"id":"a","choices":[{"index":0}]}', '{"id":"a","choices":[{"index":0}]}'],
      ['{"id":"a","usage":null,"choices":[{"index":0}]}', '{"id":"a","choices":[{"index":0}]}'],
      ['{"id":"a","choices":[{"index":0}],"usage": null}', '{"id":"a","choices":[{"index":0}]}'],
      ['{"id": "a", "choices": [{"index": 0}], "usage": null}', '{"id": "a", "choices": [{"index": 0}]}'],
      ['{"usage": null, "id": "a", "choices": []}', '{"id": "a", "choices": []}'],
      ['{"usage":null}', '{}'],
    ];
    for (const [withUsage, plain] of cases) {
      for (const end of ['\n\n', '\r\n\r\n']) {
        const input = Buffer.from(`data: ${withUsage}${end}data: [DONE]${end}`);
        const expected = `data: ${plain}${end}data: [DONE]${end}`;
        for (let i = 0; i <= input.length; i++) {
          expect(strip([input.subarray(0, i), input.subarray(i)]).out.toString('utf8'), `${withUsage} split at ${i}`).toBe(expected);
        }
      }
    }
  });

  it('leaves everything else byte-identical: [DONE], comments, event: and id: lines, errors, "usage" inside strings', () => {
    const untouched = [
      ': keep-alive\n\n',
      ':\n\n',
      'event: message\nid: 7\ndata: {"id":"a","choices":[{"delta":{"content":"x"}}]}\n\n',
      'data: {"id":"a","choices":[{"delta":{"content":"say \\"usage\\":null please"}}]}\n\n',
      'data: {"id":"a","choices":[{"delta":{"content":"\\"usage\\": {\\"choices\\":[]}"}}]}\n\n',
      'data: {"id":"a","choices":[{"delta":{"content":"\\"usage\\":null"}}]}\n\n',
      'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n',
      // usage on a chunk that still has choices is not the injected usage chunk: kept whole
      'data: {"id":"a","choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}\n\n',
      '\n',
      'data: [DONE]\n\n',
    ].join('');
    const input = Buffer.from(untouched);
    for (let i = 0; i <= input.length; i++) {
      const { out, usages } = strip([input.subarray(0, i), input.subarray(i)]);
      expect(out.toString('utf8'), `split at ${i}`).toBe(untouched);
      expect(usages).toEqual([]);
    }
  });

  it('never throws and gives the same output however the bytes are cut (fuzzed near-miss streams)', () => {
    const tokens = ['"usage"', ':', ' ', 'null', 'nul', '{', '}', ',', '"choices":[]', '[DONE]', 'data: ', 'data:', '\n', '\r', '\n\n', 'é', '👋', '"a"', '\\', '"'];
    const random = prng(42);
    for (let round = 0; round < 3000; round++) {
      let text = '';
      const n = 1 + Math.floor(random() * 40);
      for (let i = 0; i < n; i++) text += tokens[Math.floor(random() * tokens.length)];
      const input = Buffer.from(text);
      const whole = strip([input]);
      const cuts = Array.from({ length: 1 + Math.floor(random() * 6) }, () => Math.floor(random() * (input.length + 1)));
      const split = strip(splitAt(input, cuts));
      if (!split.out.equals(whole.out) || split.usages.length !== whole.usages.length) {
        expect({ text, cuts, out: split.out.toString('utf8') }).toEqual({ text, cuts, out: whole.out.toString('utf8') });
      }
      // the stripper only ever removes bytes
      expect(whole.out.length).toBeLessThanOrEqual(input.length);
    }
  });

  it('an event the upstream ended without its blank line: sent when its last line is whole, dropped when cut mid-line', () => {
    const content = 'data: {"id":"a","choices":[{"delta":{"content":"é"}}],"usage":null}';
    const plain = 'data: {"id":"a","choices":[{"delta":{"content":"é"}}]}';
    const usageChunk = 'data: {"id":"a","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}';
    const cases: [string, string, number][] = [
      [`${content}\n\ndata: [DONE]`, `${plain}\n\ndata: [DONE]`, 0],
      [`${content}\n\ndata: [DONE]\n`, `${plain}\n\ndata: [DONE]\n`, 0],
      [`${content}\r\n\r\ndata: [DONE]\r`, `${plain}\r\n\r\ndata: [DONE]\r`, 0],
      [content, plain, 0],
      [`${content}\n`, `${plain}\n`, 0],
      [content.slice(0, -3), '', 0],
      [`${content}\n\n${usageChunk}`, `${plain}\n\n`, 1],
      [`${content}\n\n${usageChunk.slice(0, -2)}`, `${plain}\n\n`, 0],
      [`${content}\n\ndata: [DO`, `${plain}\n\n`, 0],
    ];
    for (const [input, expected, usages] of cases) {
      const result = strip([Buffer.from(input)]);
      expect(result.out.toString('utf8'), JSON.stringify(input)).toBe(expected);
      expect(result.usages, JSON.stringify(input)).toHaveLength(usages);
    }
  });
});

describe('relaySse with stripInjectedUsage (real node streams)', () => {
  it('the client gets the plain stream; the outcome has the usage, completed, and the bytes written', async () => {
    for (const [shape, pair] of [
      ['chat', chat],
      ['completions', legacy],
    ] as const) {
      const random = prng(7);
      for (let round = 0; round < 30; round++) {
        const cuts = Array.from({ length: 1 + Math.floor(random() * 40) }, () => Math.floor(random() * pair.withUsage.length));
        const r = relay(upstreamOf(splitAt(pair.withUsage, cuts)), shape, true);
        const out = await readAll(r.output);
        expect(out.equals(pair.plain), `${shape} round ${round}`).toBe(true);
        const outcome = await r.ended;
        expect(outcome).toMatchObject({ completed: true, clientGone: false, error: undefined, bytes: pair.plain.length });
        expect(outcome.usage).toEqual({
          inputTokens: PROMPT_TOKENS,
          cachedTokens: shape === 'chat' ? CACHED_TOKENS : 0,
          outputTokens: CHUNKS,
        });
      }
    }
  });

  it('a client that asked for usage itself: the stream goes through untouched, usage chunk included', async () => {
    expect(injectUsageRequest({ model: 'm', stream: true, stream_options: { include_usage: true } })).toBeUndefined();
    for (const stripInjectedUsage of [false, undefined]) {
      const r = relay(upstreamOf(splitAt(chat.withUsage, [100, 1000, 5000])), 'chat', stripInjectedUsage);
      const out = await readAll(r.output);
      expect(out.equals(chat.withUsage)).toBe(true);
      const outcome = await r.ended;
      expect(outcome).toMatchObject({ completed: true, bytes: chat.withUsage.length });
      expect(outcome.usage?.outputTokens).toBe(CHUNKS);
    }
  });

  it('an event reaches the client while the upstream is silent (nothing complete is held back)', async () => {
    const body = new Readable({ read() {} });
    const r = relay(body, 'chat', true);
    const events = chat.withUsage.toString('utf8').split('\n\n');
    body.push(Buffer.from(`${events[0]}\n\n${events[1]!.slice(0, 40)}`));
    const reader = r.output[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const first = await reader.next();
    expect((first.value as Buffer).toString('utf8')).toBe(`${chat.plain.toString('utf8').split('\n\n')[0]}\n\n`);
    body.push(null);
    while (!(await reader.next()).done) {
      /* drain */
    }
    expect(await r.ended).toMatchObject({ completed: false, usage: undefined });
  });

  it('the upstream failing mid-event: the unfinished event is not sent, the error event starts on a fresh line', async () => {
    const text = chat.withUsage.toString('utf8');
    const cut = text.indexOf('"usage":null', 2000) + 8; // inside "usage":null of some chunk
    const sent = Buffer.from(text.slice(0, cut));
    const r = relay(upstreamOf([sent], Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })), 'chat', true);
    const out = (await readAll(r.output)).toString('utf8');
    const tail = streamErrorEvent(new UpstreamInterruptedError());
    expect(out.endsWith(`\n\n${tail}`)).toBe(true);
    const before = out.slice(0, -tail.length);
    expect(chat.plain.toString('utf8').startsWith(before)).toBe(true);
    expect(before).not.toContain('"usage"');
    const outcome = await r.ended;
    await tick();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ completed: false, usage: undefined, bytes: Buffer.byteLength(out) });
    expect(outcome.error).toBeInstanceOf(UpstreamInterruptedError);
  });
});

describe('injectUsageRequest', () => {
  it('adds stream_options.include_usage to a stream that did not ask, keeping every other byte', () => {
    const raw = Buffer.from('{"model":"gpt-4.1-nano","seed":12345678901234567890,"messages":[{"role":"user","content":"caf\\u00e9 👋"}],"stream":true}\n');
    const value = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    const out = injectUsageRequest(value, raw);
    expect(out?.toString('utf8')).toBe(
      '{"model":"gpt-4.1-nano","seed":12345678901234567890,"messages":[{"role":"user","content":"caf\\u00e9 👋"}],"stream":true,"stream_options":{"include_usage":true}}\n',
    );
    expect(JSON.parse(out!.toString('utf8'))).toEqual({ ...value, stream_options: { include_usage: true } });
  });

  it('without the raw bytes: the parsed body re-serialised, key order kept', () => {
    const out = injectUsageRequest({ model: 'm', stream: true, messages: [], temperature: 0.5 });
    expect(out?.toString('utf8')).toBe('{"model":"m","stream":true,"messages":[],"temperature":0.5,"stream_options":{"include_usage":true}}');
  });

  it('merges into existing stream_options (include_usage false or absent, other options kept, position kept)', () => {
    for (const options of [{ include_usage: false }, { include_obfuscation: false }, null]) {
      const body = { model: 'm', stream_options: options, stream: true, n: 2 };
      const raw = Buffer.from(JSON.stringify(body));
      const out = injectUsageRequest(body, raw);
      expect(out?.toString('utf8')).toBe(
        JSON.stringify({ model: 'm', stream_options: { ...(options ?? {}), include_usage: true }, stream: true, n: 2 }),
      );
      expect(Object.keys(JSON.parse(out!.toString('utf8')) as object)).toEqual(['model', 'stream_options', 'stream', 'n']);
    }
  });

  it('nothing to inject: not a stream, or the client already asked', () => {
    for (const body of [
      { model: 'm' },
      { model: 'm', stream: false },
      { model: 'm', stream: 'true' },
      { model: 'm', stream: true, stream_options: { include_usage: true } },
      { model: 'm', stream: true, stream_options: { include_usage: true, include_obfuscation: false } },
    ]) {
      expect(injectUsageRequest(body, Buffer.from(JSON.stringify(body))), JSON.stringify(body)).toBeUndefined();
    }
  });

  it('only chat and legacy completions take include_usage', () => {
    expect(['chat', 'completions', 'responses', 'embeddings', undefined].map((s) => canInjectUsage(s as UsageShape | undefined))).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});
