// Issue 14 item 14: with about 1,000 client headers the upstream lost the gateway's own
// Authorization (it was appended after the client's, and a server keeps only so many headers).
// The gateway's credential and identity now go first, and a request with more headers than
// server.max_request_headers (default 100) is refused with 431 in OpenAI's envelope.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';

let upstream: FakeUpstream;
let capped: TestGateway;
let roomy: TestGateway;
beforeAll(async () => {
  // Without apiKey: the fake answers whatever credential arrives, and records it.
  upstream = await startFakeUpstream();
  capped = await startGateway({ upstreamUrl: upstream.url, config: { upstream: { organization: 'org-gateway' } } });
  roomy = await startGateway({ upstreamUrl: upstream.url, config: { server: { max_request_headers: 5_000 }, upstream: { organization: 'org-gateway' } } });
});
afterAll(async () => {
  await capped?.close();
  await roomy?.close();
  await upstream?.close();
});

/** POST a chat request with the client's own credential first, then `extra` more headers. */
function postWithHeaders(gateway: TestGateway, extra: number): Promise<{ status: number; body: string }> {
  const headers: [string, string][] = [
    ['host', new URL(gateway.origin).host],
    ['authorization', `Bearer ${CLIENT_KEY}`],
    ['content-type', 'application/json'],
    ['openai-organization', 'org-client'],
  ];
  for (let i = 0; i < extra; i++) headers.push([`x-pad-${i}`, 'v']);
  const body = JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'many headers' }] });
  return new Promise((resolve, reject) => {
    const req = request(`${gateway.url}/chat/completions`, { method: 'POST', agent: false, headers: headers.flat() }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('client headers: the gateway’s first, and capped', () => {
  it('with 1,100 client headers the upstream still gets the gateway’s credential and identity, never the client’s', async () => {
    upstream.reset();
    const answer = await postWithHeaders(roomy, 1_100);
    expect(answer.status, answer.body).toBe(200);
    const seen = upstream.requests[0]!.headers;
    expect(seen.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(seen['openai-organization']).toBe('org-gateway');
  });

  it('more than max_request_headers (default 100) → 431 in OpenAI’s envelope, nothing forwarded', async () => {
    upstream.reset();
    const answer = await postWithHeaders(capped, 1_000);
    expect(answer.status, answer.body).toBe(431);
    expect(expectEnvelope(JSON.parse(answer.body))).toMatchObject({ type: 'invalid_request_error', code: 'request_header_fields_too_large', param: null });
    expect(upstream.requests).toEqual([]);
    // Within the cap (host, content-length, connection and the three above count too): served.
    expect((await postWithHeaders(capped, 90)).status).toBe(200);
  });
});
