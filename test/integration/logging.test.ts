import { describe, expect, it, vi } from 'vitest';
import { CLIENT_KEY, UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';

// One JSON log line per request, with the fields operators need, and never a credential.

const WRONG_KEY = 'tg-wrong-key-presented-by-a-client-9f8e7d6c';

const fx = useGateway({ resetEachTest: false });

type Line = Record<string, unknown>;
const requestLines = (): Line[] => fx.gateway.logs.filter((l) => l.msg === 'request');

/** Run one request and return its response and the one log line it produced. */
async function logged(send: () => Promise<Response>): Promise<{ res: Response; body: string; line: Line }> {
  const before = requestLines().length;
  const res = await send();
  const body = await res.text();
  await vi.waitFor(() => expect(requestLines().length).toBeGreaterThan(before));
  return { res, body, line: requestLines()[before]! };
}

const chatBody = (extra: object = {}) => JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hello there' }], ...extra });
const post = (path: string, body: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${fx.gateway.origin}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json', ...headers },
    body,
    signal: signal ?? null,
  });

describe('request log lines', () => {
  const results: { name: string; status: number; line: Line; header: string | null }[] = [];
  let streamedUsage: { prompt_tokens: number; completion_tokens: number } | undefined;

  it('a mix of requests each produce one line with the right fields', async () => {
    // 1. success (SDK)
    {
      const before = requestLines().length;
      const completion = await fx.gateway.client().chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
      expect(completion.object).toBe('chat.completion');
      await vi.waitFor(() => expect(requestLines().length).toBeGreaterThan(before));
      results.push({ name: 'success', status: 200, line: requestLines()[before]!, header: null });
    }
    // 2. stream with include_usage (SDK)
    {
      const before = requestLines().length;
      const stream = await fx.gateway.client().chat.completions.create({
        model: 'gpt-4.1-nano',
        messages: [{ role: 'user', content: 'stream please, with a longer prompt to count' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      for await (const chunk of stream) if (chunk.usage) streamedUsage = chunk.usage;
      expect(streamedUsage).toBeDefined();
      await vi.waitFor(() => expect(requestLines().length).toBeGreaterThan(before));
      results.push({ name: 'stream', status: 200, line: requestLines()[before]!, header: null });
    }
    // 3. wrong key, 4. missing key, 5. unknown path, 6. upstream 500, 7. bad JSON, 8. id path
    const wrong = await logged(() => post('/v1/chat/completions', chatBody(), { authorization: `Bearer ${WRONG_KEY}` }));
    const missing = await logged(() => fetch(`${fx.gateway.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody() }));
    const notFound = await logged(() => fetch(`${fx.gateway.origin}/v1/no-such-endpoint`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } }));
    const upstream500 = await logged(() => post('/v1/chat/completions', chatBody(), { 'x-fake-status': '500' }));
    const badJson = await logged(() => post('/v1/chat/completions', '{"model": "gpt-4.1-nano", "messages": [}'));
    const idPath = await logged(() => fetch(`${fx.gateway.origin}/v1/files/file-abc123`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } }));
    for (const [name, r] of Object.entries({ wrong, missing, notFound, upstream500, badJson, idPath })) {
      results.push({ name, status: r.res.status, line: r.line, header: r.res.headers.get('x-request-id') });
    }

    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['success', 200],
      ['stream', 200],
      ['wrong', 401],
      ['missing', 401],
      ['notFound', 404],
      ['upstream500', 500],
      ['badJson', 400],
      ['idPath', 404], // the fake upstream does not know file-abc123: its 404 passed through
    ]);
    expect(JSON.parse(wrong.body).error.code).toBe('invalid_api_key');

    const forwarded = new Set(['success', 'stream', 'upstream500', 'idPath']);
    const authenticated = new Set(['success', 'stream', 'upstream500', 'badJson', 'idPath']);
    for (const { name, status, line } of results) {
      const where = `${name}: ${JSON.stringify(line)}`;
      expect(line.status, where).toBe(status);
      expect(line.reqId, where).toMatch(/^req_\w{8,}$/);
      expect(typeof line.total_ms, where).toBe('number');
      expect(line.total_ms as number, where).toBeGreaterThanOrEqual(0);
      expect(typeof line.endpoint, where).toBe('string');
      if (authenticated.has(name)) expect(line.key_id, where).toBe('test-key');
      else expect(line.key_id, where).toBeUndefined();
      if (forwarded.has(name)) {
        expect(typeof line.upstream_ms, where).toBe('number');
        expect(line.upstream_ms as number, where).toBeGreaterThanOrEqual(0);
        expect(line.upstream_ms as number, where).toBeLessThanOrEqual((line.total_ms as number) + 0.01);
      } else {
        expect(line.upstream_ms, where).toBeUndefined();
      }
    }
    const byName = Object.fromEntries(results.map((r) => [r.name, r.line]));
    for (const name of ['success', 'stream', 'wrong', 'missing', 'upstream500', 'badJson']) expect(byName[name]?.endpoint, name).toBe('/v1/chat/completions');
    for (const name of ['success', 'stream', 'upstream500']) expect(byName[name]?.model, name).toBe('gpt-4.1-nano');
    expect(byName.idPath?.endpoint).toBe('/v1/files/:file_id');
    expect(byName.upstream500?.upstream_status).toBe(500);
    expect(byName.stream?.stream).toBe(true);
    expect(byName.stream?.stream_end).toBe('completed');
    for (const line of requestLines()) expect(String(line.endpoint)).not.toContain('file-abc123');
  });

  it('logs the in-stream usage of a streamed chat with include_usage', () => {
    const line = results.find((r) => r.name === 'stream')?.line;
    expect(streamedUsage).toBeDefined();
    expect(line?.input_tokens).toBe(streamedUsage?.prompt_tokens);
    expect(line?.output_tokens).toBe(streamedUsage?.completion_tokens);
    expect(line?.output_tokens).toBe(5); // the fake upstream's default: one token per chunk
    const plain = results.find((r) => r.name === 'success')?.line;
    expect(plain?.stream).toBeUndefined();
  });

  it("x-request-id of a gateway-made error equals the log line's reqId", () => {
    for (const name of ['wrong', 'missing', 'notFound', 'badJson']) {
      const r = results.find((x) => x.name === name)!;
      expect(r.header, name).toBe(r.line.reqId);
    }
    const ids = results.map((r) => r.line.reqId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a client leaving a stream mid-way is logged as client_gone, and the upstream request is aborted', async () => {
    fx.upstream.reset();
    const before = requestLines().length;
    const abort = new AbortController();
    const res = await post('/v1/chat/completions', chatBody({ stream: true }), { 'x-fake-chunks': '100', 'x-fake-chunk-delay-ms': '100' }, abort.signal);
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.cancel().catch(() => undefined);
    await vi.waitFor(() => expect(requestLines().length).toBeGreaterThan(before), { timeout: 5000 });
    const line = requestLines()[before]!;
    const rec = fx.upstream.requests.find((r) => r.path === '/v1/chat/completions');
    await rec?.finished;
    expect(rec?.aborted).toBe(true);
    expect(line.stream_end).toBe('client_gone');
  });

  it('no log line contains the client key, a presented wrong key or the upstream key', async () => {
    // the whole log, including lines written while closing
    await fx.gateway.close();
    const raw = fx.gateway.rawLogs();
    expect(raw.length).toBeGreaterThan(0);
    for (const secret of [CLIENT_KEY, WRONG_KEY, UPSTREAM_KEY]) {
      expect(raw).not.toContain(secret);
      // nor a long fragment of it
      expect(raw).not.toContain(secret.slice(4, 24));
    }
  });

  it('exactly one request line per request', () => {
    // 8 in the mix + 1 aborted stream, nothing else was sent
    expect(requestLines()).toHaveLength(results.length + 1);
    const ids = requestLines().map((l) => l.reqId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
