import { PassThrough, Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { streamErrorEvent, UpstreamUnreachableError, type TollgateError } from '../../src/errors/errors.js';
import type { UsageShape } from '../../src/usage/shape.js';
import { relaySse, type StreamOutcome } from '../../src/streaming/relay.js';

// relaySse over real node streams: bytes through untouched, usage read on the side, one outcome.

const CHAT_STREAM = Buffer.from(
  [
    { choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], usage: null },
    { choices: [{ index: 0, delta: { content: 'héllo ' }, finish_reason: null }], usage: null },
    { choices: [{ index: 0, delta: { content: 'wörld 👋 ' }, finish_reason: null }], usage: null },
    { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null },
    {
      choices: [],
      usage: { prompt_tokens: 21, completion_tokens: 6, total_tokens: 27, prompt_tokens_details: { cached_tokens: 16, audio_tokens: 0 } },
    },
  ]
    .map((c) => `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'gpt-4.1-nano', ...c })}\n\n`)
    .join('') + 'data: [DONE]\n\n',
);

const RESPONSES_STREAM = Buffer.from(
  [
    ['response.created', { response: { id: 'resp_1', status: 'in_progress', usage: null } }],
    ['response.output_text.delta', { delta: 'héllo 👋' }],
    [
      'response.completed',
      { response: { id: 'resp_1', status: 'completed', usage: { input_tokens: 9, input_tokens_details: { cached_tokens: 4 }, output_tokens: 3 } } },
    ],
  ]
    .map(([type, body], i) => `event: ${type as string}\ndata: ${JSON.stringify({ type, sequence_number: i, ...(body as object) })}\n\n`)
    .join(''),
);

/** Cut a buffer in awkward places (inside characters, inside `data:`), always the same way. */
function pieces(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(Buffer.from(buf.subarray(i, i + size)));
  return out;
}

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

interface Run {
  output: Readable;
  outcomes: StreamOutcome[];
  mapped: unknown[];
  ended: Promise<StreamOutcome>;
}

function run(upstream: Readable, shape: UsageShape | undefined, error: TollgateError = new UpstreamUnreachableError()): Run {
  const outcomes: StreamOutcome[] = [];
  const mapped: unknown[] = [];
  let resolve!: (o: StreamOutcome) => void;
  const ended = new Promise<StreamOutcome>((r) => (resolve = r));
  const output = new PassThrough();
  relaySse(upstream, output, {
    shape,
    mapError: (err) => {
      mapped.push(err);
      return error;
    },
    onEnd: (outcome) => {
      outcomes.push(outcome);
      resolve(outcome);
    },
  });
  return { output, outcomes, mapped, ended };
}

async function readAll(readable: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of readable as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Let any late, duplicate onEnd call happen before counting. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await tick();
}

describe('relaySse', () => {
  it('chat: relays the bytes unchanged and reads usage from the final usage chunk', async () => {
    const r = run(upstreamOf(pieces(CHAT_STREAM, 7)), 'chat');
    const out = await readAll(r.output);
    expect(out.equals(CHAT_STREAM)).toBe(true);
    const outcome = await r.ended;
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ completed: true, clientGone: false, error: undefined, bytes: CHAT_STREAM.length });
    expect(outcome.usage).toEqual({ inputTokens: 21, cachedTokens: 16, outputTokens: 6 });
    expect(r.mapped).toEqual([]);
  });

  it('chat: the same outcome whatever the chunk size (1 byte, 13 bytes, one piece)', async () => {
    for (const size of [1, 13, CHAT_STREAM.length]) {
      const r = run(upstreamOf(pieces(CHAT_STREAM, size)), 'chat');
      expect((await readAll(r.output)).equals(CHAT_STREAM)).toBe(true);
      const outcome = await r.ended;
      expect(outcome.completed).toBe(true);
      expect(outcome.usage).toEqual({ inputTokens: 21, cachedTokens: 16, outputTokens: 6 });
    }
  });

  it('responses: reads usage from response.completed', async () => {
    const r = run(upstreamOf(pieces(RESPONSES_STREAM, 5)), 'responses');
    const out = await readAll(r.output);
    expect(out.equals(RESPONSES_STREAM)).toBe(true);
    const outcome = await r.ended;
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ completed: true, clientGone: false, error: undefined, bytes: RESPONSES_STREAM.length });
    expect(outcome.usage).toEqual({ inputTokens: 9, cachedTokens: 4, outputTokens: 3 });
  });

  it('a stream that ends without its terminal event is not completed', async () => {
    const truncated = CHAT_STREAM.subarray(0, CHAT_STREAM.indexOf('data: [DONE]'));
    const r = run(upstreamOf(pieces(truncated, 11)), 'chat');
    expect((await readAll(r.output)).equals(truncated)).toBe(true);
    const outcome = await r.ended;
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ completed: false, clientGone: false, error: undefined });
  });

  it('upstream failing mid-way: output ends with an in-stream error event, outcome.error set', async () => {
    const sent = CHAT_STREAM.subarray(0, 200);
    const failure = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    const upstream = upstreamOf(pieces(sent, 50), failure);
    const error = new UpstreamUnreachableError();
    const r = run(upstream, 'chat', error);
    const out = await readAll(r.output);
    const tail = streamErrorEvent(error);
    expect(out.subarray(0, sent.length).equals(sent)).toBe(true);
    // 200 bytes end inside an event: it is closed with a blank line so the error event stands alone
    expect(out.subarray(sent.length).toString('utf8')).toBe('\n\n' + tail);
    expect(tail).toMatch(/^data: \{"error":\{.*\}\}\n\n$/);
    const parsed = JSON.parse(tail.slice('data: '.length)) as { error: Record<string, unknown> };
    expect(parsed.error).toEqual({ message: error.message, type: 'server_error', param: null, code: 'upstream_unreachable' });

    const outcome = await r.ended;
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(r.mapped).toEqual([failure]);
    expect(outcome.error).toBe(error);
    expect(outcome).toMatchObject({ completed: false, clientGone: false, bytes: out.length });
    expect(upstream.destroyed).toBe(true);
  });

  it('upstream failing at an event boundary: the error event follows directly', async () => {
    const boundary = CHAT_STREAM.indexOf('\n\n') + 2;
    const sent = CHAT_STREAM.subarray(0, boundary);
    const failure = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    const error = new UpstreamUnreachableError();
    const r = run(upstreamOf(pieces(sent, 50), failure), 'chat', error);
    const out = await readAll(r.output);
    expect(out.toString('utf8')).toBe(sent.toString('utf8') + streamErrorEvent(error));
  });

  it('client gone while the upstream keeps sending: upstream destroyed, clientGone, onEnd once', async () => {
    let sent = 0;
    const upstream = new Readable({
      read() {
        setTimeout(() => this.push(Buffer.from(`data: {"n":${sent++}}\n\n`)), 2);
      },
    });
    const r = run(upstream, 'chat');
    const reader = r.output[Symbol.asyncIterator]();
    expect((await reader.next()).done).toBe(false);
    r.output.destroy();
    const outcome = await r.ended;
    await vi.waitFor(() => expect(upstream.destroyed).toBe(true));
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ clientGone: true, completed: false, error: undefined });
    expect(r.mapped).toEqual([]);
  });

  it('client gone while the upstream is silent (between two tokens): upstream destroyed at once, clientGone', async () => {
    // An LLM stream is idle most of the time between tokens; a client leaving then must still free
    // the upstream body and report client_gone, not wait for (or misreport) the next upstream chunk.
    const upstream = new Readable({ read() {} });
    upstream.push(Buffer.from('data: {"n":0}\n\n'));
    const r = run(upstream, 'chat');
    const reader = r.output[Symbol.asyncIterator]();
    expect((await reader.next()).done).toBe(false);
    r.output.destroy();
    await vi.waitFor(() => expect(upstream.destroyed).toBe(true), { timeout: 2000 });
    const outcome = await r.ended;
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ clientGone: true, completed: false, error: undefined });
  });

  it('respects backpressure: a client that does not read stops the upstream from being drained', async () => {
    const piece = Buffer.from(`data: ${JSON.stringify({ pad: 'é'.repeat(8000) })}\n\n`);
    const total = 400; // ~6.4 MB
    let pulled = 0;
    const upstream = new Readable({
      read() {
        if (pulled < total) {
          pulled++;
          this.push(piece);
        } else this.push(null);
      },
    });
    const r = run(upstream, 'chat');
    for (let i = 0; i < 50; i++) await tick();
    // nobody read the output yet: only a few buffers' worth may have been pulled
    expect(pulled).toBeLessThan(total / 4);
    const out = await readAll(r.output);
    expect(pulled).toBe(total);
    expect(out.length).toBe(piece.length * total);
    expect((await r.ended).completed).toBe(false);
  });

  it('without a usage shape: bytes relayed, no usage, not completed', async () => {
    const r = run(upstreamOf(pieces(CHAT_STREAM, 64)), undefined);
    expect((await readAll(r.output)).equals(CHAT_STREAM)).toBe(true);
    const outcome = await r.ended;
    await settle();
    expect(r.outcomes).toHaveLength(1);
    expect(outcome).toMatchObject({ usage: undefined, completed: false, clientGone: false, bytes: CHAT_STREAM.length });
  });
});
