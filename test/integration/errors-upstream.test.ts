// Upstream failures (issue point 6, upstream side) and client disconnects: 502, 504, upstream
// errors passed through, streams cut mid-way, clients that go away. The gateway keeps serving.
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type FakeUpstream, type RecordedRequest, startFakeUpstream } from '../helpers/fake-upstream.js';import { CLIENT_KEY, startGateway, UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';
import { expectEnvelope, expectStillServing, postJson } from '../helpers/openai-errors.js';
import { closedPort, readText } from '../helpers/raw-http.js';

const fx = useGateway({ config: { retry: { max_attempts: 1 } } });

const AUTH = { authorization: `Bearer ${CLIENT_KEY}` };
const MODEL = 'gpt-4.1-nano';
const chat = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
type ApiError = InstanceType<typeof OpenAI.APIError>;

/** The one request the fake recorded with header `name` set. */
async function recordedWith(name: string): Promise<RecordedRequest> {
  return vi.waitFor(() => {
    const rec = fx.upstream.requests.find((r) => r.headers[name] !== undefined);
    if (!rec) throw new Error(`no upstream request with ${name} yet`);
    return rec;
  });
}

describe('upstream unreachable and slow', () => {
  it('unreachable upstream → 502, and serving resumes once it is back', async () => {
    const port = await closedPort();
    const gw = await startGateway({ upstreamUrl: `http://127.0.0.1:${port}/v1` });
    let revived: FakeUpstream | undefined;
    try {
      const res = await postJson(`${gw.url}/chat/completions`, chat, AUTH);
      expect(res.status).toBe(502);
      expect(expectEnvelope(res.body)).toMatchObject({ type: 'server_error', param: null });
      const sdkErr = await gw.client().chat.completions.create(chat).catch((e: unknown) => e);
      expect(sdkErr).toBeInstanceOf(OpenAI.InternalServerError);
      expect((sdkErr as ApiError).status).toBe(502);

      revived = await startFakeUpstream({ apiKey: UPSTREAM_KEY, port });
      await expectStillServing(gw);
    } finally {
      await gw.close();
      await revived?.close();
    }
  });

  it('upstream slower than headers_timeout_ms → 504, and the upstream request is aborted', async () => {
    const gw = await startGateway({ upstreamUrl: fx.upstream.url, config: { upstream: { headers_timeout_ms: 300 } } });
    try {
      const res = await postJson(`${gw.url}/chat/completions`, chat, { ...AUTH, 'x-fake-latency-ms': '3000' });
      expect(res.status).toBe(504);
      expect(expectEnvelope(res.body)).toMatchObject({ type: 'server_error', param: null });
      const rec = await recordedWith('x-fake-latency-ms');
      await rec.finished;
      expect(rec.aborted).toBe(true);
      await expectStillServing(gw);
    } finally {
      await gw.close();
    }
  });

  it('a stream that goes silent longer than body_timeout_ms ends with an in-stream 504 error', async () => {
    const gw = await startGateway({ upstreamUrl: fx.upstream.url, config: { upstream: { body_timeout_ms: 300 } } });
    try {
      const res = await fetch(`${gw.url}/chat/completions`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json', 'x-fake-chunks': '3', 'x-fake-chunk-delay-ms': '3000' },
        body: JSON.stringify({ ...chat, stream: true }),
      });
      expect(res.status).toBe(200);
      const { text, error } = await readText(res);
      expect(error).toBeUndefined();
      const last = text.trimEnd().split('\n\n').at(-1)!;
      expect(last.startsWith('data: ')).toBe(true);
      expect(expectEnvelope(JSON.parse(last.slice(6)))).toMatchObject({ type: 'server_error', code: 'upstream_timeout' });
      await expectStillServing(gw);
    } finally {
      await gw.close();
    }
  });
});

describe('upstream errors pass through', () => {
  for (const status of [400, 429, 500, 503]) {
    it(`status ${status}: same status and body as from the upstream directly`, async () => {
      const headers = { 'x-fake-status': String(status) };
      const directRes = await postJson(`${fx.upstream.url}/chat/completions`, chat, { authorization: `Bearer ${UPSTREAM_KEY}`, ...headers });
      const res = await postJson(`${fx.gateway.url}/chat/completions`, chat, { ...AUTH, ...headers });
      expect(directRes.status).toBe(status);
      expect(res.status).toBe(status);
      expect(res.text).toBe(directRes.text);
      expectEnvelope(res.body);
      expect(res.headers.get('content-type')).toBe(directRes.headers.get('content-type'));
      if (status === 429) expect(res.headers.get('retry-after')).toBe('1');
      expect(fx.upstream.requests).toHaveLength(2);
      await expectStillServing(fx.gateway);
    });
  }
});

describe('upstream cut mid-way', () => {
  const cut = { 'x-fake-cut-after': '3' };

  it('chat stream cut: the SDK iteration throws the in-stream error after the first chunks', async () => {
    const stream = await fx.gateway.client().chat.completions.create({ ...chat, stream: true }, { headers: cut });
    const received: unknown[] = [];
    const err = await (async () => {
      for await (const chunk of stream) received.push(chunk);
    })().catch((e: unknown) => e);
    expect(received).toHaveLength(3);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(expectEnvelope({ error: (err as ApiError).error })).toMatchObject({ type: 'server_error' });
    await expectStillServing(fx.gateway);
  });

  it('responses stream cut: the SDK iteration throws an APIError', async () => {
    const stream = await fx.gateway.client().responses.create({ model: MODEL, input: 'hi', stream: true }, { headers: cut });
    const types: string[] = [];
    const err = await (async () => {
      for await (const event of stream) types.push(event.type);
    })().catch((e: unknown) => e);
    expect(types).toEqual(['response.created', 'response.in_progress', 'response.output_item.added']);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as ApiError).type).toBe('server_error');
    await expectStillServing(fx.gateway);
  });

  for (const [path, body] of [
    ['/chat/completions', { ...chat, stream: true }],
    ['/responses', { model: MODEL, input: 'hi', stream: true }],
  ] as const) {
    it(`raw ${path} stream cut: the upstream's events, then data: {"error":…}, then a clean end`, async () => {
      const post = (base: string, key: string) =>
        fetch(`${base}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...cut },
          body: JSON.stringify(body),
        });
      const directRead = await readText(await post(fx.upstream.url, UPSTREAM_KEY));
      expect(directRead.error).toBeDefined(); // the fake really cut the connection
      const res = await post(fx.gateway.url, CLIENT_KEY);
      expect(res.status).toBe(200);
      const read = await readText(res);
      expect(read.error).toBeUndefined();
      expect(directRead.text.split('\n\n').filter(Boolean)).toHaveLength(3);
      expect(read.text.startsWith(directRead.text)).toBe(true);
      const rest = read.text.slice(directRead.text.length);
      expect(rest).toMatch(/^data: \{"error":\{.*\}\}\n\n$/);
      expect(expectEnvelope(JSON.parse(rest.slice(6)))).toMatchObject({ type: 'server_error' });
      await expectStillServing(fx.gateway);
    });
  }

  it('a non-stream answer cut mid-body: the client sees a failed request, not a hang', async () => {
    const sdkErr = await fx.gateway.client().chat.completions.create(chat, { headers: cut }).catch((e: unknown) => e);
    expect(sdkErr).toBeInstanceOf(Error);

    const res = await fetch(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json', ...cut },
      body: JSON.stringify(chat),
    });
    const read = await readText(res);
    expect(read.error).toBeDefined();
    await expectStillServing(fx.gateway);
  });
});

describe('client disconnects', () => {
  // A client of its own: after an abort, undici pre-opens a fresh connection that would otherwise
  // sit on the gateway (a connection without a request is not idle, so close() would wait for it).
  let agent: Agent;
  beforeEach(() => {
    agent = new Agent();
  });
  afterEach(() => agent.destroy());

  const post = (headers: Record<string, string>, body: unknown, signal: AbortSignal) =>
    undiciFetch(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
      dispatcher: agent,
    });

  /** Start a slow stream, read its first chunk, then go away. */
  async function leaveMidStream(): Promise<RecordedRequest> {
    const controller = new AbortController();
    const res = await post({ 'x-fake-chunks': '50', 'x-fake-chunk-delay-ms': '20' }, { ...chat, stream: true }, controller.signal);
    expect(res.status).toBe(200);
    const first = await res.body!.getReader().read();
    expect(first.done).toBe(false);
    controller.abort();
    return recordedWith('x-fake-chunks');
  }

  /** Ask a slow fx.upstream, then go away once the upstream has the request (and 100 ms more). */
  async function leaveWhileWaiting(): Promise<RecordedRequest> {
    const controller = new AbortController();
    const pending = post({ 'x-fake-latency-ms': '2000' }, chat, controller.signal).catch((e: unknown) => e);
    const rec = await recordedWith('x-fake-latency-ms');
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    return rec;
  }

  it('mid-stream: the upstream request is aborted', async () => {
    const rec = await leaveMidStream();
    await rec.finished;
    expect(rec.aborted).toBe(true);
    await expectStillServing(fx.gateway);
  });

  it('while waiting for a slow upstream: the upstream request is aborted', async () => {
    const rec = await leaveWhileWaiting();
    await rec.finished;
    expect(rec.aborted).toBe(true);
    await expectStillServing(fx.gateway);
  });

  it('a client that went away is still accounted for: its log line, and the in-flight gauge falls back', async () => {
    const lines = () => fx.gateway.logs.filter((l) => l.msg === 'request' && l.endpoint === '/v1/chat/completions');
    const before = lines().length;
    const stream = await leaveMidStream();
    const slow = await leaveWhileWaiting();
    await Promise.all([stream.finished, slow.finished]);
    await vi.waitFor(() => expect(lines().length).toBe(before + 2), { timeout: 3000 });
    const logged = lines().slice(before);
    expect(logged.filter((l) => l.stream_end === 'client_gone')).toHaveLength(1);
    expect(logged.filter((l) => l.status === 499)).toHaveLength(1);
    const metrics = await (await fetch(`${fx.gateway.origin}/metrics`)).text();
    // Only the /metrics request itself is in flight.
    expect(metrics).toMatch(/^tollgate_inflight_requests 1$/m);
  });
});
