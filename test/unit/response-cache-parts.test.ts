import { describe, expect, it } from 'vitest';
import { createAssembler } from '../../src/cache/assemble.js';
import { cacheDirective, cacheKeyOf, stableStringify } from '../../src/cache/key.js';
import { createMemoryCacheStore } from '../../src/cache/memory-store.js';
import { replayStream } from '../../src/cache/replay.js';
import { decodeAnswer, encodeAnswer, type CachedAnswer } from '../../src/cache/store.js';
import { SseDecoder } from '../../src/streaming/sse.js';

const usage = { inputTokens: 10, cachedTokens: 2, outputTokens: 3 };
const answer = (text: string): CachedAnswer => ({ shape: 'chat', body: Buffer.from(text), usage });

describe('cache key', () => {
  it('ignores key order, stream and stream_options; separates endpoint, model and scope', () => {
    const a = cacheKeyOf('/v1/chat/completions', 'm', 'key:a', { model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 0 });
    const b = cacheKeyOf('/v1/chat/completions', 'm', 'key:a', { temperature: 0, stream: true, stream_options: { include_usage: true }, messages: [{ content: 'x', role: 'user' }], model: 'm' });
    expect(a).toBe(b);
    expect(cacheKeyOf('/v1/responses', 'm', 'key:a', { model: 'm' })).not.toBe(cacheKeyOf('/v1/chat/completions', 'm', 'key:a', { model: 'm' }));
    expect(cacheKeyOf('/v1/responses', 'm', 'key:b', { model: 'm' })).not.toBe(cacheKeyOf('/v1/responses', 'm', 'key:a', { model: 'm' }));
    expect(cacheKeyOf('/v1/responses', 'm', 'key:a', { model: 'm', temperature: 1 })).not.toBe(cacheKeyOf('/v1/responses', 'm', 'key:a', { model: 'm' }));
    expect(stableStringify({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
  });

  it('refuses an over-deep value with a coded 400 instead of overflowing the stack', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => stableStringify({ a: deep })).toThrowError(expect.objectContaining({ status: 400, code: 'json_too_deep' }));
  });

  it('reads Cache-Control', () => {
    expect(cacheDirective(undefined)).toBe('use');
    expect(cacheDirective('max-age=0, No-Cache')).toBe('no-cache');
    expect(cacheDirective('no-cache, no-store')).toBe('no-store');
    expect(cacheDirective(['private', 'no-store'])).toBe('no-store');
  });
});

describe('memory store', () => {
  it('expires entries, evicts the least recently used beyond its bound, purges by scope', async () => {
    let now = 0;
    const store = createMemoryCacheStore({ maxBytes: 3 * (256 + 10), now: () => now });
    store.set('key:a', '1', answer('0123456789'), 1000);
    store.set('key:a', '2', answer('0123456789'), 1000);
    store.set('key:b', '3', answer('0123456789'), 1000);
    expect(store.get('key:a', '1')).toBeDefined(); // 1 is now the most recent
    store.set('key:b', '4', answer('0123456789'), 1000);
    expect(store.get('key:a', '2')).toBeUndefined();
    expect(store.size).toBe(3);
    expect(store.bytes).toBeLessThanOrEqual(3 * 266);
    now = 1000;
    expect(store.get('key:a', '1')).toBeUndefined();
    now = 0;
    expect(await store.purge('key:b')).toBe(2);
    expect(store.size).toBe(0);
    store.set('key:a', 'big', answer('x'.repeat(10_000)), 1000);
    expect(store.size).toBe(0);
  });

  it('round-trips the byte encoding used by Redis', () => {
    const decoded = decodeAnswer(encodeAnswer({ shape: 'responses', body: Buffer.from('{"a":"é\\n"}'), usage }));
    expect(decoded).toEqual({ shape: 'responses', body: Buffer.from('{"a":"é\\n"}'), usage });
    expect(decodeAnswer(Buffer.from('{"v":2}\n{}'))).toBeUndefined();
  });
});

function assemble(shape: 'chat' | 'responses' | 'completions', stream: Buffer): Buffer | undefined {
  const assembler = createAssembler(shape);
  if (!assembler) return undefined;
  const decoder = new SseDecoder((event) => assembler.event(event));
  // Split anywhere, even inside a UTF-8 character.
  for (let i = 0; i < stream.length; i += 7) decoder.push(stream.subarray(i, i + 7));
  decoder.end();
  return assembler.result();
}

describe('stream ⇄ stored answer', () => {
  const chat = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4.1-nano',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: 'héllo wörld 👋',
          refusal: null,
          annotations: [],
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }],
        },
        logprobs: null,
        finish_reason: 'tool_calls',
      },
    ],
    usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 },
    service_tier: 'default',
    system_fingerprint: 'fp',
  };

  it('chat: a replayed stream assembles back into the same answer; usage chunk only when asked', () => {
    const withUsage = replayStream('chat', chat, true) as Buffer;
    expect(JSON.parse(assemble('chat', withUsage)?.toString() ?? 'null')).toEqual(chat);
    const without = (replayStream('chat', chat, false) as Buffer).toString();
    expect(without).not.toContain('"usage"');
    expect(without.endsWith('data: [DONE]\n\n')).toBe(true);
    // Without its usage chunk a stream cannot be stored (a hit would not know what it saved).
    expect(assemble('chat', Buffer.from(without))).toBeUndefined();
  });

  it('chat: a stream without [DONE], with an error or an unknown delta is not stored', () => {
    const full = (replayStream('chat', chat, true) as Buffer).toString();
    expect(assemble('chat', Buffer.from(full.replace('data: [DONE]\n\n', '')))).toBeUndefined();
    expect(assemble('chat', Buffer.from(full.replace('data: [DONE]', 'data: {"error":{"message":"x"}}\n\ndata: [DONE]')))).toBeUndefined();
    expect(assemble('chat', Buffer.from(full.replace('"delta":{}', '"delta":{"audio":{"id":"a"}}')))).toBeUndefined();
  });

  it('responses: the completed event is the answer; an incomplete response is not stored', () => {
    const response = { id: 'resp_1', object: 'response', status: 'completed', output: [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'hi', annotations: [] }] }], usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 } };
    const stream = replayStream('responses', response, false) as Buffer;
    const events = stream.toString().split('\n\n').filter(Boolean).map((e) => e.split('\n')[0]);
    expect(events).toEqual([
      'event: response.created',
      'event: response.in_progress',
      'event: response.output_item.added',
      'event: response.content_part.added',
      'event: response.output_text.delta',
      'event: response.output_text.done',
      'event: response.content_part.done',
      'event: response.output_item.done',
      'event: response.completed',
    ]);
    expect(JSON.parse(assemble('responses', stream)?.toString() ?? 'null')).toEqual(response);
    expect(assemble('responses', replayStream('responses', { ...response, status: 'incomplete' }, false) as Buffer)).toBeUndefined();
  });

  it('legacy completions round-trip', () => {
    const completion = { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ text: 'abc', index: 0, logprobs: null, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    expect(JSON.parse(assemble('completions', replayStream('completions', completion, true) as Buffer)?.toString() ?? 'null')).toEqual(completion);
  });
});
