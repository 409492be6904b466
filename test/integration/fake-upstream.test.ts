// Self-test of the test rig: the fake OpenAI upstream (through the real SDK) and the Redis helpers.
import { Redis } from 'ioredis';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  type FakeUpstream,
  fakeEmbedding,
  fakeSpeechBytes,
  fakeText,
  startFakeUpstream,
} from '../helpers/fake-upstream.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { uniquePrefix } from '../helpers/redis.js';

describe('fake upstream', () => {
  let fake: FakeUpstream;
  let client: OpenAI;

  beforeAll(async () => {
    fake = await startFakeUpstream();
    client = new OpenAI({ baseURL: fake.url, apiKey: 'sk-test', maxRetries: 0 });
  });
  afterAll(() => fake.close());
  beforeEach(() => fake.reset());

  it('answers chat completions deterministically with OpenAI headers', async () => {
    const params = { model: 'gpt-4.1-nano', messages: [{ role: 'user' as const, content: 'héllo there' }] };
    const { data, response } = await client.chat.completions.create(params).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.model).toBe('gpt-4.1-nano');
    expect(data.choices[0]?.message.content).toBe(fakeText(5));
    expect(data.usage?.completion_tokens).toBe(5);
    expect(data.usage?.total_tokens).toBe((data.usage?.prompt_tokens ?? 0) + 5);
    expect(response.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]+$/);
    expect(response.headers.get('openai-version')).toBe('2020-10-01');
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('30000');
    expect(response.headers.get('set-cookie')).toContain('__cf_bm=fake');

    const again = await client.chat.completions.create(params);
    expect(again).toEqual(data);

    expect(fake.requests).toHaveLength(2);
    const rec = fake.requests[0]!;
    expect(rec.method).toBe('POST');
    expect(rec.path).toBe('/v1/chat/completions');
    expect(rec.headers.authorization).toBe('Bearer sk-test');
    expect(JSON.parse(rec.body.toString())).toEqual(params);
    await rec.finished;
    expect(rec.aborted).toBe(false);
  });

  it('streams chat chunks with include_usage and scripted token counts', async () => {
    const stream = await client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } },
      { headers: { 'x-fake-chunks': '7', 'x-fake-prompt-tokens': '40', 'x-fake-cached-tokens': '8' } },
    );
    let text = '';
    const usages: unknown[] = [];
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usages.push(chunk.usage);
    }
    expect(text).toBe(fakeText(7));
    expect(usages.slice(0, -1)).toEqual(Array(usages.length - 1).fill(null));
    expect(usages.at(-1)).toMatchObject({
      prompt_tokens: 40,
      completion_tokens: 7,
      total_tokens: 47,
      prompt_tokens_details: { cached_tokens: 8 },
    });
  });

  it('streams Responses API events', async () => {
    const types: string[] = [];
    let text = '';
    for await (const ev of await client.responses.create({ model: 'gpt-4.1-nano', input: 'hi', stream: true })) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
    }
    expect(text).toBe(fakeText(5));
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    const r = await client.responses.create({ model: 'gpt-4.1-nano', input: 'hi' });
    expect(r.output_text).toBe(fakeText(5));
  });

  it('decodes base64 embeddings (SDK default) to the 8 fake floats', async () => {
    const res = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['abc', 'wörld'] });
    expect(JSON.parse(fake.requests[0]!.body.toString()).encoding_format).toBe('base64');
    expect(res.data.map((d) => d.embedding)).toEqual([fakeEmbedding('abc'), fakeEmbedding('wörld')]);
  });

  it('stores uploaded files and serves their bytes; speech bytes are checkable', async () => {
    const bytes = Buffer.from('{"custom_id":"1"}\n{"custom_id":"2 👋"}\n');
    const file = await client.files.create({ file: await toFile(bytes, 'in.jsonl'), purpose: 'batch' });
    expect(file).toMatchObject({ object: 'file', bytes: bytes.length, filename: 'in.jsonl', purpose: 'batch' });
    const content = await client.files.content(file.id);
    expect(Buffer.from(await content.arrayBuffer())).toEqual(bytes);

    const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'héllo' });
    expect(speech.headers.get('content-type')).toBe('audio/mpeg');
    expect(Buffer.from(await speech.arrayBuffer())).toEqual(fakeSpeechBytes('héllo'));

    const tr = await client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(Buffer.alloc(321), 'a.mp3') });
    expect(tr.text).toBe('fake transcript of 321 bytes');
  });

  it('requires the assistants beta header', async () => {
    const a = await client.beta.assistants.create({ model: 'gpt-4.1-nano' });
    expect(a.id).toMatch(/^asst_/);
    const raw = await fetch(`${fake.url}/assistants`, { method: 'POST', body: '{"model":"m"}' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe('invalid_beta');
  });

  it('scripts errors, cuts and records client aborts', async () => {
    const err = await client.models.list({ headers: { 'x-fake-status': '429' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('rate_limit_exceeded');

    const cut = client.chat.completions.create(
      { model: 'm', messages: [], stream: true },
      { headers: { 'x-fake-cut-after': '2' } },
    );
    await expect(
      (async () => {
        for await (const _ of await cut) {
          // drain
        }
      })(),
    ).rejects.toThrow();
    const cutRec = fake.requests.at(-1)!;
    await cutRec.finished;
    expect(cutRec).toMatchObject({ cut: true, aborted: false });

    const ac = new AbortController();
    const slow = client.models.list({ headers: { 'x-fake-latency-ms': '10000' }, signal: ac.signal });
    await expect.poll(() => fake.requests.length).toBe(3);
    ac.abort();
    await expect(slow).rejects.toThrow();
    const slowRec = fake.requests.at(-1)!;
    await slowRec.finished;
    expect(slowRec.aborted).toBe(true);
  });

  it('answers unknown routes with OpenAI-style 404', async () => {
    const res = await fetch(`${fake.url}/nope?x=1`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: 'Invalid URL (GET /v1/nope)', type: 'invalid_request_error', param: null, code: null },
    });
  });
});

describe('redis rig', () => {
  it('provides a live redis URL from the global setup', async () => {
    const redis = new Redis(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe('PONG');
      const key = `${uniquePrefix('rig')}k`;
      await redis.set(key, 'v');
      expect(await redis.get(key)).toBe('v');
    } finally {
      redis.disconnect();
    }
  });

  it('can SIGKILL a redis-server and restart it on the same port', async () => {
    const first = await startRedisServer();
    first.kill('SIGKILL');
    await first.exited;
    const second = await startRedisServer({ port: first.port });
    try {
      expect(second.url).toBe(first.url);
      const redis = new Redis(second.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      expect(await redis.ping()).toBe('PONG');
      redis.disconnect();
    } finally {
      await second.stop();
    }
  });
});
