// Header hygiene: credentials, hop-by-hop headers, pass-through headers and untouched bodies.
import { toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { type RecordedRequest, startFakeUpstream } from '../helpers/fake-upstream.js';import { CLIENT_KEY, startGateway, UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';
import { rawRequest, readText } from '../helpers/raw-http.js';

const fx = useGateway();

const MODEL = 'gpt-4.1-nano';
const chat = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };

function only(): RecordedRequest {
  expect(fx.upstream.requests).toHaveLength(1);
  return fx.upstream.requests[0]!;
}

function headerText(headers: Headers | Record<string, unknown>): string {
  return headers instanceof Headers ? JSON.stringify([...headers.entries()]) : JSON.stringify(headers);
}

describe('credentials', () => {
  it("replaces the client's Authorization with the upstream key", async () => {
    await fx.gateway.client().chat.completions.create(chat);
    const rec = only();
    expect(rec.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(headerText(rec.headers)).not.toContain(CLIENT_KEY);
    expect(rec.body.toString()).not.toContain(CLIENT_KEY);
  });

  it('never returns the upstream key in a header or body (success, stream, upstream error, own error)', async () => {
    const base = { 'content-type': 'application/json' };
    const auth = { authorization: `Bearer ${CLIENT_KEY}` };
    const cases: [string, RequestInit][] = [
      ['chat', { method: 'POST', headers: { ...base, ...auth }, body: JSON.stringify(chat) }],
      ['stream', { method: 'POST', headers: { ...base, ...auth }, body: JSON.stringify({ ...chat, stream: true }) }],
      ['upstream 500', { method: 'POST', headers: { ...base, ...auth, 'x-fake-status': '500' }, body: JSON.stringify(chat) }],
      ['unknown model', { method: 'POST', headers: { ...base, ...auth }, body: JSON.stringify({ ...chat, model: 'gpt-nope' }) }],
      ['no key', { method: 'POST', headers: base, body: JSON.stringify(chat) }],
    ];
    for (const [name, init] of cases) {
      const res = await fetch(`${fx.gateway.url}/chat/completions`, init);
      const { text } = await readText(res);
      expect(text.length, name).toBeGreaterThan(0);
      expect(text, name).not.toContain(UPSTREAM_KEY);
      expect(headerText(res.headers), name).not.toContain(UPSTREAM_KEY);
    }
  });

  it('does not leak the upstream key when the upstream rejects it (fake with another key)', async () => {
    const strict = await startFakeUpstream({ apiKey: 'sk-some-other-key-0000' });
    const gw = await startGateway({ upstreamUrl: strict.url });
    try {
      const res = await fetch(`${gw.url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(chat),
      });
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text).error.code).toBe('invalid_api_key');
      expect(text).not.toContain(UPSTREAM_KEY);
      expect(headerText(res.headers)).not.toContain(UPSTREAM_KEY);
    } finally {
      await gw.close();
      await strict.close();
    }
  });
});

describe('response headers', () => {
  it('strips set-cookie and passes x-request-id, openai-processing-ms, openai-version through', async () => {
    const directRes = await fetch(`${fx.upstream.url}/models`, { headers: { authorization: `Bearer ${UPSTREAM_KEY}` } });
    expect(directRes.headers.get('set-cookie')).toContain('__cf_bm');
    const directId = directRes.headers.get('x-request-id')!;
    await directRes.text();

    const res = await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    expect(res.status).toBe(200);
    await res.text();
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.headers.get('openai-version')).toBe('2020-10-01');
    expect(res.headers.get('openai-processing-ms')).toMatch(/^\d+$/);
    // The fake numbers its request ids; the next one is the id of the request tollgate forwarded.
    const next = BigInt(`0x${directId.slice(-24)}`) + 1n;
    expect(res.headers.get('x-request-id')).toBe(`${directId.slice(0, -24)}${next.toString(16).padStart(24, '0')}`);
  });

  it('strips set-cookie on a stream and on an upstream error too', async () => {
    const stream = await fx.gateway.client().chat.completions.create({ ...chat, stream: true }).withResponse();
    expect(stream.response.headers.get('set-cookie')).toBeNull();
    expect(stream.response.headers.get('x-request-id')).toMatch(/^req_/);
    for await (const _ of stream.data) void _;

    const res = await fetch(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', 'x-fake-status': '429' },
      body: JSON.stringify(chat),
    });
    expect(res.status).toBe(429);
    await res.text();
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it("tollgate's own error answers carry a request id", async () => {
    const res = await fetch(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer tg-wrong-key-000000000000', 'content-type': 'application/json' },
      body: JSON.stringify(chat),
    });
    expect(res.status).toBe(401);
    await res.text();
    expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{16,}$/);
    const notFound = await fetch(`${fx.gateway.url}/nope`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    expect(notFound.status).toBe(404);
    await notFound.text();
    expect(notFound.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{16,}$/);
    expect(fx.upstream.requests).toHaveLength(0);
  });
});

describe('request headers and bodies', () => {
  it('drops hop-by-hop headers, including those named by Connection', async () => {
    const res = await rawRequest(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${CLIENT_KEY}`,
        'content-type': 'application/json',
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': '1',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic c2VjcmV0',
        upgrade: 'h2c',
        'x-keep-me': 'yes',
      },
      body: JSON.stringify(chat),
    });
    expect(res.status).toBe(200);
    const rec = only();
    for (const name of ['x-drop-me', 'keep-alive', 'te', 'proxy-authorization', 'upgrade']) {
      expect(rec.headers[name], name).toBeUndefined();
    }
    expect(rec.headers.connection ?? '').not.toContain('x-drop-me');
    expect(rec.headers['x-keep-me']).toBe('yes');
  });

  it("does not forward the client's openai-organization / openai-project", async () => {
    await fx.gateway.client({ organization: 'org-client', project: 'proj-client' }).chat.completions.create(chat);
    const rec = only();
    expect(rec.headers['openai-organization']).toBeUndefined();
    expect(rec.headers['openai-project']).toBeUndefined();
  });

  it("sends the gateway's configured organization instead of the client's", async () => {
    const gw = await startGateway({ upstreamUrl: fx.upstream.url, config: { upstream: { organization: 'org-gateway' } } });
    try {
      await gw.client({ organization: 'org-client' }).chat.completions.create(chat);
      expect(only().headers['openai-organization']).toBe('org-gateway');
    } finally {
      await gw.close();
    }
  });

  it('forwards the exact JSON bytes, odd whitespace and unknown fields included', async () => {
    const body = Buffer.from(
      '{ "model" :"gpt-4.1-nano",\n\t"messages":[ {"role":"user","content":"h\\u00e9llo 👋"} ] ,' +
        '"x_unknown_field": {"nested": [1, 2.50, 1e3, null, "é"]}, "temperature": 0.70   }\r\n',
    );
    const res = await rawRequest(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    const rec = only();
    expect(rec.body.equals(body)).toBe(true);
    expect(rec.headers['content-length']).toBe(String(body.length));
  });

  it('passes custom headers through (x-client-request-id, x-stainless-*)', async () => {
    await fx.gateway.client().chat.completions.create(chat, { headers: { 'X-Client-Request-Id': 'my-trace-123', 'x-custom-thing': 'abc' } });
    const rec = only();
    expect(rec.headers['x-client-request-id']).toBe('my-trace-123');
    expect(rec.headers['x-custom-thing']).toBe('abc');
    expect(rec.headers['x-stainless-lang']).toBe('js');
    expect(rec.headers['x-stainless-package-version']).toMatch(/^\d+\.\d+\.\d+/);
    expect(rec.headers['user-agent']).toMatch(/^OpenAI\/JS /);
  });

  it('streams a multipart upload through with identical bytes and boundary', async () => {
    const boundary = '----tollgate-test-boundary-7MA4YWxkTrZu0gW';
    const file = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31) % 256));
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="data.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const body = Buffer.concat([head, file, tail]);
    const contentType = `multipart/form-data; boundary=${boundary}`;

    // Once with content-length, once chunked (no length known up front).
    for (const pieces of [body, [head, file.subarray(0, 1000), file.subarray(1000), tail]]) {
      fx.upstream.reset();
      const res = await rawRequest(`${fx.gateway.url}/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': contentType },
        body: pieces,
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ object: 'file', bytes: file.length, filename: 'data.bin' });
      const rec = only();
      expect(rec.headers['content-type']).toBe(contentType);
      expect(rec.body.equals(body)).toBe(true);
    }
  });

  it('an SDK upload reaches upstream with the content type and bytes the SDK sent', async () => {
    let sentType: string | null = null;
    let sentBody: Buffer | undefined;
    const spy: typeof fetch = async (input, init) => {
      const req = new Request(input, init);
      sentType = req.headers.get('content-type');
      sentBody = Buffer.from(await req.clone().arrayBuffer());
      return fetch(req);
    };
    const client = fx.gateway.client({ fetch: spy });
    await client.files.create({ purpose: 'batch', file: await toFile(Buffer.from('{"a":1}\n'), 'in.jsonl') });
    const rec = only();
    expect(sentType).toMatch(/^multipart\/form-data; boundary=/);
    expect(rec.headers['content-type']).toBe(sentType);
    expect(rec.body.equals(sentBody!)).toBe(true);
  });
});
