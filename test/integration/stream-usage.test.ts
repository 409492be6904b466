import { describe, expect, it, vi } from 'vitest';
import { fakeText } from '../helpers/fake-upstream.js';import { CLIENT_KEY, UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';

// Tollgate settles real usage for every chat / legacy-completions stream: when the client did not
// ask for usage, tollgate asks the upstream for it (stream_options.include_usage) and takes the
// usage chunk and the "usage":null members out again, so the client receives byte for byte what
// the upstream sends for its own request.

const MODEL = 'gpt-4.1-nano';
const PROMPT_TOKENS = 777;
const CACHED_TOKENS = 512;
const CHUNKS = 30;
const KNOBS = {
  'x-fake-chunks': String(CHUNKS),
  'x-fake-prompt-tokens': String(PROMPT_TOKENS),
  'x-fake-cached-tokens': String(CACHED_TOKENS),
};

const fx = useGateway({ resetEachTest: false });

type Line = Record<string, unknown>;
const requestLines = (): Line[] => fx.gateway.logs.filter((l) => l.msg === 'request');

async function post(base: string, key: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...KNOBS, ...headers },
    body,
  });
}

/** Every byte of a response body, up to where the connection was cut if it was. */
async function bytesOf(res: Response): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
  } catch {
    // cut by the upstream (x-fake-cut-after): keep what arrived
  }
  return Buffer.concat(chunks);
}

/** The stream straight from the fake fx.upstream, and the same request through tollgate, with its log line. */
async function directAndVia(path: string, body: string, headers: Record<string, string> = {}) {
  const direct = await post(fx.upstream.url, UPSTREAM_KEY, path, body, headers);
  expect(direct.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const directBytes = await bytesOf(direct);

  fx.upstream.reset();
  const before = requestLines().length;
  const via = await post(fx.gateway.url, CLIENT_KEY, path, body, headers);
  expect(via.status).toBe(200);
  expect(via.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const viaBytes = await bytesOf(via);
  await vi.waitFor(() => expect(requestLines().length).toBeGreaterThan(before));
  const received = fx.upstream.requests.find((r) => r.path === `/v1${path}`);
  expect(received).toBeDefined();
  return { directBytes, viaBytes, line: requestLines()[before]!, received: received! };
}

const firstId = (stream: Buffer): string => /"id":"([^"]+)"/.exec(stream.toString('utf8'))?.[1] ?? '';

/**
 * The fake derives its ids from a hash of the request body, so the body tollgate sends (with
 * include_usage) gets a different, equally long id than the client's own body; real OpenAI ids are
 * random per request anyway. Give the direct stream the id tollgate's request got; nothing else
 * is touched.
 */
function withIdOf(direct: Buffer, via: Buffer): Buffer {
  const [from, to] = [firstId(direct), firstId(via)];
  expect(from).not.toBe('');
  expect(to.length).toBe(from.length);
  const out = Buffer.from(direct.toString('utf8').replaceAll(from, to));
  expect(out.length).toBe(direct.length);
  return out;
}

const cases = [
  { name: 'chat', path: '/chat/completions', body: { model: MODEL, messages: [{ role: 'user', content: 'Say hello to the wörld 👋' }] }, cached: CACHED_TOKENS },
  { name: 'legacy completions', path: '/completions', body: { model: MODEL, prompt: 'Say hello to the wörld 👋' }, cached: 0 },
] as const;

describe('a stream whose client did not ask for usage', () => {
  for (const { name, path, body, cached } of cases) {
    for (const streamOptions of [undefined, { include_usage: false }, { include_usage: false, include_obfuscation: false }]) {
      it(`${name}, stream_options ${JSON.stringify(streamOptions)}: byte-identical to the upstream's own stream, usage settled`, async () => {
        const sent = JSON.stringify({ ...body, stream: true, ...(streamOptions ? { stream_options: streamOptions } : {}) });
        const { directBytes, viaBytes, line, received } = await directAndVia(path, sent);

        // what the client gets is what the upstream sends for the client's own request
        expect(directBytes.includes('"usage"')).toBe(false);
        expect(viaBytes.toString('utf8')).toBe(withIdOf(directBytes, viaBytes).toString('utf8'));
        expect(viaBytes.equals(withIdOf(directBytes, viaBytes))).toBe(true);
        expect(viaBytes.toString('utf8').endsWith('data: [DONE]\n\n')).toBe(true);

        // while tollgate asked the upstream for usage, leaving every other option as it was
        const upstreamBody = JSON.parse(received.body.toString('utf8')) as Record<string, unknown>;
        expect(upstreamBody).toEqual({ ...(JSON.parse(sent) as object), stream_options: { ...streamOptions, include_usage: true } });
        if (!streamOptions) {
          // the client's bytes, with the member appended: nothing re-serialised
          expect(received.body.toString('utf8')).toBe(`${sent.slice(0, -1)},"stream_options":{"include_usage":true}}`);
        }

        // and settled the upstream's real usage
        expect(line).toMatchObject({ input_tokens: PROMPT_TOKENS, cached_tokens: cached, output_tokens: CHUNKS, stream: true, stream_end: 'completed' });
      });
    }
  }

  it('the openai SDK sees no usage on any chunk, and the whole text', async () => {
    fx.upstream.reset();
    const before = requestLines().length;
    const stream = await fx.gateway.client({ defaultHeaders: KNOBS }).chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
    });
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect('usage' in chunk, JSON.stringify(chunk)).toBe(false);
      expect(chunk.choices).toHaveLength(1);
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(chunks).toBe(CHUNKS + 2);
    expect(text).toBe(fakeText(CHUNKS));
    expect(fx.upstream.requests[0]?.body.toString('utf8')).toContain('"stream_options":{"include_usage":true}');
    await vi.waitFor(() => expect(requestLines().length).toBeGreaterThan(before));
    expect(requestLines()[before]).toMatchObject({ input_tokens: PROMPT_TOKENS, output_tokens: CHUNKS });
  });

  it('the upstream cutting the stream before the usage chunk: the client got a prefix of the plain stream, usage is the settlement estimate', async () => {
    const sent = JSON.stringify({ ...cases[0].body, stream: true });
    const { directBytes, viaBytes, line, received } = await directAndVia('/chat/completions', sent, { 'x-fake-cut-after': '10' });
    expect(received.body.toString('utf8')).toContain('"stream_options":{"include_usage":true}');
    // the fake cut both streams after the same 10 events
    const direct = directBytes.toString('utf8');
    expect(direct.split('\n\n')).toHaveLength(11);
    const via = viaBytes.toString('utf8');
    expect(via).not.toContain('"usage"');
    const plainPart = via.slice(0, via.lastIndexOf('data: {"error":'));
    expect(plainPart.length).toBeGreaterThan(0);
    expect(withIdOf(directBytes, viaBytes).toString('utf8').startsWith(plainPart)).toBe(true);
    expect(plainPart.endsWith('\n\n')).toBe(true);
    // No usage was read: the line shows what settlement charged instead, marked as estimated.
    expect(line).toMatchObject({ tokens_source: 'estimated', cached_tokens: 0 });
    expect(line.input_tokens).toBeGreaterThan(0);
    expect(line.stream_end).toBe('upstream_error');
  });
});

describe('a stream whose client asked for usage', () => {
  for (const { name, path, body, cached } of cases) {
    it(`${name}: forwarded as sent, the usage chunk arrives as usual`, async () => {
      const sent = JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } });
      const { directBytes, viaBytes, line, received } = await directAndVia(path, sent);
      // same request body, so same ids: byte-identical as it stands
      expect(received.body.toString('utf8')).toBe(sent);
      expect(viaBytes.equals(directBytes)).toBe(true);
      expect(viaBytes.toString('utf8')).toContain(',"usage":null}');
      expect(viaBytes.toString('utf8')).toMatch(/"choices":\[\],"usage":\{"prompt_tokens":777,"completion_tokens":30,/);
      expect(line).toMatchObject({ input_tokens: PROMPT_TOKENS, cached_tokens: cached, output_tokens: CHUNKS, stream_end: 'completed' });
    });
  }

  it('the openai SDK: usage null on content chunks, the final chunk carries the usage', async () => {
    const stream = await fx.gateway.client({ defaultHeaders: KNOBS }).chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks).toHaveLength(CHUNKS + 3);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
    expect(chunks.at(-1)?.choices).toEqual([]);
    expect(chunks.at(-1)?.usage).toMatchObject({
      prompt_tokens: PROMPT_TOKENS,
      completion_tokens: CHUNKS,
      prompt_tokens_details: { cached_tokens: CACHED_TOKENS },
    });
  });
});

describe('requests that are not streams', () => {
  it('a JSON chat completion is forwarded without stream_options', async () => {
    fx.upstream.reset();
    const sent = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const res = await post(fx.gateway.url, CLIENT_KEY, '/chat/completions', sent);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(CHUNKS);
    expect(fx.upstream.requests[0]?.body.toString('utf8')).toBe(sent);
  });

  it('a responses stream is forwarded as sent (no stream_options there)', async () => {
    fx.upstream.reset();
    const sent = JSON.stringify({ model: MODEL, input: 'hi', stream: true });
    const res = await post(fx.gateway.url, CLIENT_KEY, '/responses', sent);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(fx.upstream.requests[0]?.body.toString('utf8')).toBe(sent);
  });
});
