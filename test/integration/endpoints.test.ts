// Acceptance: through tollgate, the official openai SDK gets the same bodies as from the fake
// upstream directly, for every endpoint; streams arrive byte-identical.
import OpenAI, { toFile } from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FAKE_PNG_B64,
  type RecordedRequest,
  fakeEmbedding,
  fakeSpeechBytes,
  parseRecordedForm,
} from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';
import { readText } from '../helpers/raw-http.js';

const fx = useGateway({ resetEachTest: false });
let direct: OpenAI;
let via: OpenAI;

beforeAll(async () => {
  direct = new OpenAI({ baseURL: fx.upstream.url, apiKey: UPSTREAM_KEY, maxRetries: 0 });
  via = fx.gateway.client();
});

const MODEL = 'gpt-4.1-nano';
const messages = [{ role: 'user' as const, content: 'héllo there 👋' }];

interface Both<T> {
  direct: T;
  via: T;
  /** What the fake recorded for the call made through tollgate. */
  viaRequests: RecordedRequest[];
}

/** Make the same call once against the fake directly and once through tollgate. */
async function both<T>(call: (client: OpenAI) => Promise<T>): Promise<Both<T>> {
  const start = fx.upstream.requests.length;
  const a = await call(direct);
  const mid = fx.upstream.requests.length;
  const b = await call(via);
  const directRequests = fx.upstream.requests.slice(start, mid);
  const viaRequests = fx.upstream.requests.slice(mid);
  // Both legs reached the fake with the same requests: tollgate forwarded, it did not answer itself.
  expect(viaRequests.length).toBeGreaterThan(0);
  expect(viaRequests.map((r) => `${r.method} ${r.path}`)).toEqual(directRequests.map((r) => `${r.method} ${r.path}`));
  for (const r of viaRequests) expect(r.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  return { direct: a, via: b, viaRequests };
}

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}

async function bytesOf(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

describe('chat, responses, completions', () => {
  it('chat completion (non-stream)', async () => {
    const r = await both((c) => c.chat.completions.create({ model: MODEL, messages }));
    expect(r.direct.object).toBe('chat.completion');
    expect(r.via).toEqual(r.direct);
  });

  it('chat completion (stream, with usage)', async () => {
    const r = await both(async (c) =>
      collect(await c.chat.completions.create({ model: MODEL, messages, stream: true, stream_options: { include_usage: true } })),
    );
    expect(r.direct.length).toBeGreaterThan(3);
    expect(r.direct.at(-1)?.usage?.completion_tokens).toBe(5);
    expect(r.via).toEqual(r.direct);
  });

  it('responses create (non-stream and stream), retrieve, delete, input items', async () => {
    const created = await both((c) => c.responses.create({ model: MODEL, input: 'héllo' }));
    expect(created.direct.object).toBe('response');
    expect(created.via).toEqual(created.direct);

    const streamed = await both(async (c) => collect(await c.responses.create({ model: MODEL, input: 'héllo', stream: true })));
    expect(streamed.direct.at(-1)?.type).toBe('response.completed');
    expect(streamed.via).toEqual(streamed.direct);

    const id = created.direct.id;
    const retrieved = await both((c) => c.responses.retrieve(id));
    expect(retrieved.direct.id).toBe(id);
    expect(retrieved.via).toEqual(retrieved.direct);

    const deleted = await both(async (c) => (await c.responses.delete(id).asResponse()).json());
    expect(deleted.direct).toEqual({ id, object: 'response.deleted', deleted: true });
    expect(deleted.via).toEqual(deleted.direct);

    const items = await both(async (c) => (await c.responses.inputItems.list(id)).data);
    expect(items.direct).toHaveLength(1);
    expect(items.via).toEqual(items.direct);
  });

  it('legacy completions (non-stream and stream)', async () => {
    const plain = await both((c) => c.completions.create({ model: MODEL, prompt: 'Say this is a test' }));
    expect(plain.direct.object).toBe('text_completion');
    expect(plain.via).toEqual(plain.direct);

    const streamed = await both(async (c) => collect(await c.completions.create({ model: MODEL, prompt: 'Say this', stream: true })));
    expect(streamed.direct.length).toBeGreaterThan(2);
    expect(streamed.via).toEqual(streamed.direct);
  });
});

describe('embeddings, moderations, images, audio', () => {
  it('embeddings (SDK default base64 path)', async () => {
    const r = await both((c) => c.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'twö'] }));
    expect(JSON.parse(r.viaRequests[0]!.body.toString()).encoding_format).toBe('base64');
    expect(r.direct.data.map((d) => d.embedding)).toEqual([fakeEmbedding('one'), fakeEmbedding('twö')]);
    expect(r.via).toEqual(r.direct);
  });

  it('moderations', async () => {
    const r = await both((c) => c.moderations.create({ model: 'omni-moderation-latest', input: 'hello' }));
    expect(r.direct.results).toHaveLength(1);
    expect(r.via).toEqual(r.direct);
  });

  it('images.generate and images.edit (multipart)', async () => {
    const gen = await both((c) => c.images.generate({ model: 'gpt-image-1', prompt: 'a red fox' }));
    expect(gen.direct.data?.[0]?.b64_json).toBe(FAKE_PNG_B64);
    expect(gen.via).toEqual(gen.direct);

    const png = Buffer.from(FAKE_PNG_B64, 'base64');
    const edit = await both(async (c) =>
      c.images.edit({ model: 'gpt-image-1', prompt: 'make it blue', image: await toFile(png, 'fox.png', { type: 'image/png' }) }),
    );
    expect(edit.direct.data).toHaveLength(1);
    expect(edit.via).toEqual(edit.direct);
    const form = await parseRecordedForm(edit.viaRequests[0]!);
    expect(Buffer.from(await (form.get('image') as File).arrayBuffer())).toEqual(png);
  });

  it('audio.speech returns identical bytes', async () => {
    const r = await both(async (c) => bytesOf(await c.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'héllo wörld' })));
    expect(r.direct).toEqual(fakeSpeechBytes('héllo wörld'));
    expect(r.via.equals(r.direct)).toBe(true);
  });

  it('audio transcriptions and translations (multipart)', async () => {
    const audio = Buffer.alloc(3000, 7);
    const tr = await both(async (c) =>
      c.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio, 'speech.mp3', { type: 'audio/mpeg' }) }),
    );
    expect(tr.direct.text).toBe('fake transcript of 3000 bytes');
    expect(tr.via).toEqual(tr.direct);

    const tl = await both(async (c) =>
      c.audio.translations.create({ model: 'whisper-1', file: await toFile(audio, 'speech.mp3', { type: 'audio/mpeg' }) }),
    );
    expect(tl.direct.text).toBe('fake transcript of 3000 bytes');
    expect(tl.via).toEqual(tl.direct);
  });
});

describe('files, batches, fine-tuning', () => {
  // Bytes of every value, plus text: an upload must arrive exactly as sent.
  const content = Buffer.concat([
    Buffer.from('{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4.1-nano"}}\n'),
    Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256)),
  ]);
  const upload = async (c: OpenAI) => c.files.create({ purpose: 'batch', file: await toFile(content, 'input.jsonl') });

  it('files create / list / retrieve / content / delete', async () => {
    const created = await both(upload);
    expect(created.direct.bytes).toBe(content.length);
    expect(created.via).toEqual(created.direct);
    const form = await parseRecordedForm(created.viaRequests[0]!);
    expect(Buffer.from(await (form.get('file') as File).arrayBuffer()).equals(content)).toBe(true);
    const id = created.direct.id;

    const listed = await both(async (c) => (await c.files.list()).data);
    expect(listed.direct.map((f) => f.id)).toContain(id);
    expect(listed.via).toEqual(listed.direct);

    const retrieved = await both((c) => c.files.retrieve(id));
    expect(retrieved.via).toEqual(retrieved.direct);

    const body = await both(async (c) => bytesOf(await c.files.content(id)));
    expect(body.direct.equals(content)).toBe(true);
    expect(body.via.equals(content)).toBe(true);

    // Deleting twice needs the file twice: upload it again between the two legs.
    const first = await direct.files.delete(id);
    await upload(direct);
    const second = await via.files.delete(id);
    expect(first).toEqual({ id, object: 'file', deleted: true });
    expect(second).toEqual(first);
  });

  it('batches create / retrieve / list / cancel', async () => {
    const file = await upload(direct);
    const params = { input_file_id: file.id, endpoint: '/v1/chat/completions' as const, completion_window: '24h' as const };
    const created = await both((c) => c.batches.create(params));
    expect(created.direct.object).toBe('batch');
    expect(created.via).toEqual(created.direct);
    const id = created.direct.id;
    const retrieved = await both((c) => c.batches.retrieve(id));
    expect(retrieved.via).toEqual(retrieved.direct);
    const listed = await both(async (c) => (await c.batches.list()).data);
    expect(listed.direct.map((b) => b.id)).toContain(id);
    expect(listed.via).toEqual(listed.direct);
    const cancelled = await both((c) => c.batches.cancel(id));
    expect(cancelled.direct.status).toBe('cancelling');
    expect(cancelled.via).toEqual(cancelled.direct);
  });

  it('fine-tuning jobs create / list / retrieve', async () => {
    const file = await upload(direct);
    const created = await both((c) => c.fineTuning.jobs.create({ model: MODEL, training_file: file.id }));
    expect(created.direct.object).toBe('fine_tuning.job');
    expect(created.via).toEqual(created.direct);
    const listed = await both(async (c) => (await c.fineTuning.jobs.list({ limit: 5 })).data);
    expect(listed.viaRequests[0]!.path).toBe('/v1/fine_tuning/jobs?limit=5'); // the query string is forwarded
    expect(listed.direct.length).toBeGreaterThan(0);
    expect(listed.via).toEqual(listed.direct);
    const retrieved = await both((c) => c.fineTuning.jobs.retrieve(created.direct.id));
    expect(retrieved.via).toEqual(retrieved.direct);
  });
});

describe('assistants (beta) and models', () => {
  it('assistants and threads, with the OpenAI-Beta header forwarded', async () => {
    const created = await both((c) => c.beta.assistants.create({ model: MODEL, name: 'helper', instructions: 'Be brief.' }));
    expect(created.direct.object).toBe('assistant');
    expect(created.via).toEqual(created.direct);
    const listed = await both(async (c) => (await c.beta.assistants.list()).data);
    expect(listed.via).toEqual(listed.direct);
    const retrieved = await both((c) => c.beta.assistants.retrieve(created.direct.id));
    expect(retrieved.via).toEqual(retrieved.direct);
    const thread = await both((c) => c.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] }));
    expect(thread.direct.object).toBe('thread');
    expect(thread.via).toEqual(thread.direct);
    const message = await both((c) => c.beta.threads.messages.create(thread.direct.id, { role: 'user', content: 'and again' }));
    expect(message.direct.object).toBe('thread.message');
    expect(message.via).toEqual(message.direct);

    for (const r of [created, listed, retrieved, thread, message]) {
      for (const rec of r.viaRequests) expect(rec.headers['openai-beta']).toContain('assistants=v2');
    }
  });

  it('models list and retrieve', async () => {
    const listed = await both(async (c) => (await c.models.list()).data);
    expect(listed.direct.map((m) => m.id)).toContain(MODEL);
    expect(listed.via).toEqual(listed.direct);
    const retrieved = await both((c) => c.models.retrieve(MODEL));
    expect(retrieved.direct.id).toBe(MODEL);
    expect(retrieved.via).toEqual(retrieved.direct);
  });
});

describe('streams arrive byte-identical', () => {
  const knobs = { 'x-fake-chunks': '30', 'x-fake-chunk-delay-ms': '3' };

  async function postRaw(base: string, key: string, path: string, body: unknown) {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...knobs },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const read = await readText(res);
    expect(read.error).toBeUndefined();
    return read;
  }

  for (const [path, body, terminal] of [
    ['/chat/completions', { model: MODEL, messages, stream: true, stream_options: { include_usage: true } }, 'data: [DONE]\n\n'],
    ['/responses', { model: MODEL, input: 'héllo', stream: true }, 'event: response.completed\n'],
  ] as const) {
    it(`POST ${path}`, async () => {
      const a = await postRaw(fx.upstream.url, UPSTREAM_KEY, path, body);
      const b = await postRaw(fx.gateway.url, CLIENT_KEY, path, body);
      expect(a.text).toContain(terminal);
      expect(b.text).toBe(a.text);
      // It really arrived in pieces, not as one buffered body.
      expect(b.reads).toBeGreaterThan(1);
    });
  }
});
