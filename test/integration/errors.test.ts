// Errors tollgate answers itself (issue point 6, request side): each in OpenAI's envelope, nothing
// forwarded upstream, and the gateway keeps serving afterwards.
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_KEY, startGateway, type TestGateway, useGateway } from '../helpers/gateway.js';
import { expectEnvelope, expectStillServing, postJson } from '../helpers/openai-errors.js';
import { rawRequest } from '../helpers/raw-http.js';

const fx = useGateway();

const AUTH = { authorization: `Bearer ${CLIENT_KEY}` };
const MODEL = 'gpt-4.1-nano';
const chat = (content: string) => ({ model: MODEL, messages: [{ role: 'user', content }] });

/** Nothing reached the upstream since the last reset. */
function expectNothingForwarded(): void {
  expect(fx.upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual([]);
}

describe('malformed requests', () => {
  it('invalid JSON → 400', async () => {
    for (const bad of ['{"model": "gpt-4.1-nano", "messages": [', '']) {
      const res = await postJson(`${fx.gateway.url}/chat/completions`, bad, AUTH);
      expect(res.status).toBe(400);
      expect(expectEnvelope(res.body)).toEqual({
        message: expect.stringMatching(/^We could not parse the JSON body of your request\./),
        type: 'invalid_request_error',
        param: null,
        code: null,
      });
    }
    expectNothingForwarded();
    await expectStillServing(fx.gateway);
  });

  it('unknown path → 404 Invalid URL (METHOD /path)', async () => {
    const res = await postJson(`${fx.gateway.url}/nope?x=1`, {}, AUTH);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { message: 'Invalid URL (POST /v1/nope)', type: 'invalid_request_error', param: null, code: null } });
    const wrongMethod = await fetch(`${fx.gateway.url}/embeddings`, { method: 'DELETE', headers: AUTH });
    expect(wrongMethod.status).toBe(404);
    expect(await wrongMethod.json()).toEqual({
      error: { message: 'Invalid URL (DELETE /v1/embeddings)', type: 'invalid_request_error', param: null, code: null },
    });
    expectNothingForwarded();
    await expectStillServing(fx.gateway);
  });
});

describe('body limits', () => {
  let small: TestGateway;
  beforeAll(async () => {
    small = await startGateway({ upstreamUrl: fx.upstream.url, config: { server: { body_limit_bytes: 1024, upload_limit_bytes: 4096 } } });
  });
  afterAll(() => small?.close());

  it('JSON body over the limit → 413', async () => {
    const res = await postJson(`${small.url}/chat/completions`, chat('x'.repeat(2000)), AUTH);
    expect(res.status).toBe(413);
    expect(expectEnvelope(res.body)).toMatchObject({ type: 'invalid_request_error', param: null });
    expect(res.body.error.message).toContain('1024');
    // The same without a content-length (chunked): the limit holds while the body streams in.
    const chunked = await rawRequest(`${small.url}/chat/completions`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: [Buffer.from('{"model":"gpt-4.1-nano","messages":[{"role":"user","content":"'), Buffer.alloc(2000, 120), Buffer.from('"}]}')],
    });
    expect(chunked.status).toBe(413);
    expect(expectEnvelope(JSON.parse(chunked.body.toString()))).toEqual(res.body.error);
    expectNothingForwarded();
    await expectStillServing(small);
  });

  it('multipart upload over the upload limit (SDK, with content-length) → 413', async () => {
    const err = await small
      .client()
      .files.create({ purpose: 'batch', file: await toFile(Buffer.alloc(5000, 1), 'big.jsonl') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
    expectEnvelope({ error: (err as InstanceType<typeof OpenAI.APIError>).error });
    // The upstream never got a completed upload.
    for (const rec of fx.upstream.requests) {
      await rec.finished;
      expect(rec.aborted).toBe(true);
    }
    await expectStillServing(small);
  });

  it('chunked multipart upload over the upload limit → 413, upstream upload not completed', async () => {
    const boundary = 'b0undary';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n`);
    const pieces = [head, ...Array.from({ length: 8 }, () => Buffer.alloc(1024, 2)), Buffer.from(`\r\n--${boundary}--\r\n`)];
    const res = await rawRequest(`${small.url}/files`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
      body: pieces,
      pieceDelayMs: 20,
    });
    expect(res.status).toBe(413);
    expect(expectEnvelope(JSON.parse(res.body.toString()))).toMatchObject({ type: 'invalid_request_error' });
    for (const rec of fx.upstream.requests) {
      await rec.finished;
      expect(rec.aborted).toBe(true);
      expect(rec.body.length).toBeLessThan(4096 + head.length);
    }
    await expectStillServing(small);
  });
});

describe('authentication', () => {
  it('missing key → 401', async () => {
    for (const headers of [{}, { authorization: 'Bearer ' }] as Record<string, string>[]) {
      const res = await postJson(`${fx.gateway.url}/chat/completions`, chat('hi'), headers);
      expect(res.status).toBe(401);
      expect(expectEnvelope(res.body)).toEqual({
        message: expect.stringMatching(/^You didn't provide an API key\. You need to provide your API key in an Authorization header using Bearer auth/),
        type: 'invalid_request_error',
        param: null,
        code: null,
      });
    }
    expectNothingForwarded();
    await expectStillServing(fx.gateway);
  });

  it('wrong key → 401 invalid_api_key with the key masked', async () => {
    const wrong = 'tg-wrong-secret-key-0123456789WXYZ';
    const res = await postJson(`${fx.gateway.url}/chat/completions`, chat('hi'), { authorization: `Bearer ${wrong}` });
    expect(res.status).toBe(401);
    const error = expectEnvelope(res.body);
    expect(error).toEqual({ message: expect.stringMatching(/^Incorrect API key provided: /), type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
    expect(error.message).not.toContain(wrong);
    expect(error.message).not.toContain(wrong.slice(0, 12));
    expect(error.message).toContain('WXYZ');
    expect(JSON.stringify([...res.headers.entries()])).not.toContain(wrong);

    const sdkErr = await fx.gateway.client({ apiKey: wrong }).models.list().catch((e: unknown) => e);
    expect(sdkErr).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((sdkErr as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    expectNothingForwarded();
    await expectStillServing(fx.gateway);
  });
});

describe('models', () => {
  const notFound = 'The model `gpt-nope` does not exist or you do not have access to it.';

  it('model outside the catalogue → 404 model_not_found', async () => {
    const res = await postJson(`${fx.gateway.url}/chat/completions`, { ...chat('hi'), model: 'gpt-nope' }, AUTH);
    expect(res.status).toBe(404);
    expect(expectEnvelope(res.body)).toMatchObject({ message: notFound, type: 'invalid_request_error', code: 'model_not_found' });
    const sdkErr = await fx.gateway.client().embeddings.create({ model: 'gpt-nope', input: 'x' }).catch((e: unknown) => e);
    expect(sdkErr).toBeInstanceOf(OpenAI.NotFoundError);
    expect((sdkErr as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    expectNothingForwarded();
    await expectStillServing(fx.gateway);
    // Exactly OpenAI's body, which names no param (e.g. openai/openai-agents-python#458).
    expect(res.body.error.param).toBeNull();
  });

  it('with models.unknown = pass_through the same request is forwarded', async () => {
    const open = await startGateway({ upstreamUrl: fx.upstream.url, config: { models: { unknown: 'pass_through' } } });
    try {
      const completion = await open.client().chat.completions.create({ model: 'gpt-nope', messages: [{ role: 'user', content: 'hi' }] });
      expect(completion.model).toBe('gpt-nope');
      expect(fx.upstream.requests).toHaveLength(1);
      expect(JSON.parse(fx.upstream.requests[0]!.body.toString()).model).toBe('gpt-nope');
    } finally {
      await open.close();
    }
  });
});

describe('context window and output cap', () => {
  let tiny: TestGateway;
  beforeAll(async () => {
    tiny = await startGateway({
      upstreamUrl: fx.upstream.url,
      config: { models: { catalogue: [{ name: 'tiny-model', context_window: 100, max_output_tokens: 50 }] } },
    });
  });
  afterAll(() => tiny?.close());

  const contextMessage = (window: number, noun: string) =>
    new RegExp(`^This model's maximum context length is ${window} tokens\\. However, your ${noun} resulted in (\\d+) tokens\\. Please reduce the length of the ${noun}\\.$`);

  it('over a small context window → 400 context_length_exceeded with the exact count', async () => {
    // " hello" is one o200k token per 6 characters: the chars/4 estimate (≈225) differs from the exact count.
    const content = ' hello'.repeat(150);
    const res = await postJson(`${tiny.url}/chat/completions`, { model: 'tiny-model', messages: [{ role: 'user', content }] }, AUTH);
    expect(res.status).toBe(400);
    const error = expectEnvelope(res.body);
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' });
    const m = contextMessage(100, 'messages').exec(error.message);
    expect(m, error.message).not.toBeNull();
    const counted = Number(m![1]);
    expect(counted).toBeGreaterThan(100);
    const exact = countTokens(content);
    expect(counted).toBeGreaterThanOrEqual(exact);
    expect(counted).toBeLessThanOrEqual(exact + 8); // role/content framing only, not the estimate
    expectNothingForwarded();
    await tiny.client().chat.completions.create({ model: 'tiny-model', messages: [{ role: 'user', content: 'short' }] });
    await expectStillServing(tiny);
  });

  it('responses input over the window → 400 with param input', async () => {
    const res = await postJson(`${tiny.url}/responses`, { model: 'tiny-model', input: ' hello'.repeat(150) }, AUTH);
    expect(res.status).toBe(400);
    const error = expectEnvelope(res.body);
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'input', code: 'context_length_exceeded' });
    expect(error.message).toMatch(contextMessage(100, 'input'));
    expectNothingForwarded();
    await expectStillServing(tiny);
  });

  it('over the real gpt-4.1-nano window (~4.3 MB message) → 400 under the default body limit', { timeout: 60_000 }, async () => {
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo'];
    const parts: string[] = [];
    for (let i = 0, len = 0; len < 4_300_000; i++) {
      const part = `${words[i % words.length]}${i % 7} ${(i * 37) % 1000}, `;
      parts.push(part);
      len += part.length;
    }
    const res = await postJson(`${fx.gateway.url}/chat/completions`, chat(parts.join('')), AUTH);
    expect(res.status).toBe(400);
    const error = expectEnvelope(res.body);
    expect(error).toMatchObject({ type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' });
    const m = contextMessage(1047576, 'messages').exec(error.message);
    expect(m, error.message).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(1047576);
    expectNothingForwarded();
    await expectStillServing(fx.gateway);
  });

  const capMessage = (param: string) =>
    `${param} is too large: 100000. This model supports at most 32768 completion tokens, whereas you provided 100000.`;

  for (const [path, param, body] of [
    ['/chat/completions', 'max_tokens', { ...chat('hi'), max_tokens: 100000 }],
    ['/chat/completions', 'max_completion_tokens', { ...chat('hi'), max_completion_tokens: 100000 }],
    ['/responses', 'max_output_tokens', { model: MODEL, input: 'hi', max_output_tokens: 100000 }],
  ] as const) {
    it(`${param} too large on ${path} → 400`, async () => {
      const res = await postJson(`${fx.gateway.url}${path}`, body, AUTH);
      expect(res.status).toBe(400);
      expect(expectEnvelope(res.body)).toEqual({ message: capMessage(param), type: 'invalid_request_error', param, code: 'invalid_value' });
      expectNothingForwarded();
      // Exactly at the model's maximum is admitted.
      const ok = await postJson(`${fx.gateway.url}${path}`, { ...body, [param]: 32768 }, AUTH);
      expect(ok.status).toBe(200);
      expect(fx.upstream.requests).toHaveLength(1);
      await expectStillServing(fx.gateway);
    });
  }
});
