import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientHead, nameKey, upstreamRequestHeaders, type UpstreamIdentity } from '../../src/upstream/headers.js';

const UPSTREAM_KEY = 'sk-upstream-0123456789abcdef';
const CLIENT_KEY = 'tg-client-key-abcdef0123456789';
const identity: UpstreamIdentity = { apiKey: UPSTREAM_KEY, organization: 'org-gateway', project: 'proj_gateway' };
const noIdentity: UpstreamIdentity = { apiKey: undefined, organization: undefined, project: undefined };

/** What an OpenAI SDK (plus a proxy in front) sends. */
const clientHeaders = (): IncomingHttpHeaders => ({
  host: 'tollgate.internal:8080',
  connection: 'keep-alive, X-Trace-Hop',
  'keep-alive': 'timeout=5',
  'proxy-connection': 'keep-alive',
  'proxy-authorization': 'Basic cHJveHk6cHc=',
  te: 'trailers',
  trailer: 'x-checksum',
  'transfer-encoding': 'chunked',
  upgrade: 'h2c',
  'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA',
  'x-trace-hop': 'only-for-this-hop',
  authorization: `Bearer ${CLIENT_KEY}`,
  'api-key': CLIENT_KEY,
  'x-api-key': CLIENT_KEY,
  'openai-organization': 'org-client-own',
  'openai-project': 'proj_client_own',
  cookie: 'session=abc',
  'content-length': '1234',
  expect: '100-continue',
  'content-type': 'application/json',
  accept: 'application/json',
  'accept-encoding': 'gzip, br',
  'user-agent': 'OpenAI/JS 6.0.0',
  'openai-beta': 'assistants=v2',
  'x-stainless-lang': 'js',
  'x-stainless-retry-count': '0',
  'idempotency-key': 'idem-1',
  'x-request-id': 'client-req-1',
});

describe('upstreamRequestHeaders', () => {
  const out = upstreamRequestHeaders(clientHeaders(), identity, { contentLength: 99, identityEncoding: true });
  const names = Object.keys(out);

  it('strips hop-by-hop headers and headers named in Connection', () => {
    for (const hop of ['host', 'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'x-trace-hop']) {
      expect(names).not.toContain(hop);
    }
  });

  it("replaces the client's credential with the gateway's", () => {
    expect(out.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(names).not.toContain('api-key');
    expect(names).not.toContain('x-api-key');
    expect(JSON.stringify(out)).not.toContain(CLIENT_KEY);
  });

  it("drops the client's organization/project and sends the configured ones", () => {
    expect(out['openai-organization']).toBe('org-gateway');
    expect(out['openai-project']).toBe('proj_gateway');
    expect(JSON.stringify(out)).not.toContain('org-client-own');
    expect(JSON.stringify(out)).not.toContain('proj_client_own');
  });

  it('without a configured identity: no credential, organization or project at all', () => {
    const bare = upstreamRequestHeaders(clientHeaders(), noIdentity, { identityEncoding: false });
    for (const name of ['authorization', 'api-key', 'x-api-key', 'openai-organization', 'openai-project']) expect(Object.keys(bare)).not.toContain(name);
    expect(JSON.stringify(bare)).not.toContain(CLIENT_KEY);
  });

  it('drops cookies and expect', () => {
    expect(names).not.toContain('cookie');
    expect(names).not.toContain('expect');
  });

  it('content-length: the computed one when known, none for a streamed body', () => {
    expect(out['content-length']).toBe('99');
    const streamed = upstreamRequestHeaders(clientHeaders(), identity, { identityEncoding: false });
    expect(Object.keys(streamed)).not.toContain('content-length');
    const empty = upstreamRequestHeaders(clientHeaders(), identity, { contentLength: 0, identityEncoding: false });
    expect(empty['content-length']).toBe('0');
  });

  it('asks for identity encoding only when usage is read from the body', () => {
    expect(out['accept-encoding']).toBe('identity');
    const passthrough = upstreamRequestHeaders(clientHeaders(), identity, { identityEncoding: false });
    expect(passthrough['accept-encoding']).toBe('gzip, br');
  });

  it('passes every other header through unchanged', () => {
    expect(out).toMatchObject({
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': 'OpenAI/JS 6.0.0',
      'openai-beta': 'assistants=v2',
      'x-stainless-lang': 'js',
      'x-stainless-retry-count': '0',
      'idempotency-key': 'idem-1',
      'x-request-id': 'client-req-1',
    });
  });

  it('does not modify the input object', () => {
    const input = clientHeaders();
    upstreamRequestHeaders(input, identity, { contentLength: 1, identityEncoding: true });
    expect(input).toEqual(clientHeaders());
  });
});

describe('clientHead', () => {
  /** undici's raw list: [name, value, …] as Buffers, repeated names for list values. */
  const raw = (headers: Record<string, string | string[] | undefined>): Buffer[] => {
    const out: Buffer[] = [];
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) out.push(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
    }
    return out;
  };
  /** The client head as an object (content-length back in, as written for relayed bodies). */
  const clientResponseHeaders = (headers: Record<string, string | string[] | undefined>, keepContentLength: boolean): Record<string, string> => {
    const head = clientHead(raw(headers));
    const out: Record<string, string> = {};
    for (let i = 0; i < head.headers.length; i += 2) out[head.headers[i] as string] = head.headers[i + 1] as string;
    if (keepContentLength && head.contentLength !== undefined) out['content-length'] = head.contentLength;
    return out;
  };
  const upstream = (): Record<string, string | string[] | undefined> => ({
    connection: 'keep-alive, x-upstream-hop',
    'keep-alive': 'timeout=65',
    'transfer-encoding': 'chunked',
    trailer: 'x-checksum',
    upgrade: 'websocket',
    'proxy-authenticate': 'Basic',
    'x-upstream-hop': 'internal',
    'set-cookie': ['__cf_bm=abc; path=/; HttpOnly', '_cfuvid=def; path=/'],
    'content-length': '512',
    'content-type': 'application/json',
    'x-request-id': 'req_upstream_1',
    'openai-processing-ms': '42',
    'openai-version': '2020-10-01',
    'x-ratelimit-remaining-requests': '29999',
    'cf-ray': '8f00-AMS',
    'retry-after': '1',
    'x-absent': undefined,
  });

  it('strips hop-by-hop headers, Connection-named headers and set-cookie', () => {
    const out = clientResponseHeaders(upstream(), true);
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-authenticate', 'x-upstream-hop', 'set-cookie', 'x-absent']) {
      expect(Object.keys(out)).not.toContain(name);
    }
  });

  it('passes OpenAI headers through, and tells content type and whether a request id came', () => {
    expect(clientResponseHeaders(upstream(), true)).toMatchObject({
      'content-type': 'application/json',
      'x-request-id': 'req_upstream_1',
      'openai-processing-ms': '42',
      'openai-version': '2020-10-01',
      'cf-ray': '8f00-AMS',
      'retry-after': '1',
    });
    const head = clientHead(raw(upstream()));
    expect(head).toMatchObject({ contentType: 'application/json', contentLength: '512', hasRequestId: true });
    expect(clientHead(raw({ 'content-type': 'text/plain' })).hasRequestId).toBe(false);
  });

  it('keeps repeated headers as repeated entries', () => {
    const head = clientHead(raw({ vary: ['origin', 'accept-encoding'] }));
    expect(head.headers).toEqual(['vary', 'origin', 'vary', 'accept-encoding']);
  });

  it("drops the upstream's x-ratelimit-* headers: they describe the gateway's organisation, not the key", () => {
    const out = clientResponseHeaders(upstream(), true);
    expect(Object.keys(out).filter((name) => name.startsWith('x-ratelimit-'))).toEqual([]);
  });

  it('hands content-length apart, for answers relayed unchanged only', () => {
    expect(clientResponseHeaders(upstream(), true)['content-length']).toBe('512');
    expect(Object.keys(clientResponseHeaders(upstream(), false))).not.toContain('content-length');
  });

  it('header names are matched case-insensitively, Connection tokens too', () => {
    const out = clientResponseHeaders({ Connection: 'X-Upstream-Hop ,  close', 'X-Upstream-Hop': 'v', 'x-keep': 'k', 'Set-Cookie': 'a=b', 'Keep-Alive': 't=5' }, true);
    expect(out).toEqual({ 'x-keep': 'k' });
  });

  it('names read once are known by their bytes: each spelling gives the same head on every answer', () => {
    const names = ['Content-Type', 'content-type', 'X-Request-Id', 'x-ratelimit-remaining-tokens', 'Set-Cookie', 'OpenAI-Version', 'Connection'];
    const answer = (): Buffer[] => names.flatMap((name) => [Buffer.from(name), Buffer.from(`v-${name}`)]);
    const first = clientHead(answer());
    expect(first).toMatchObject({ contentType: 'v-Content-Type', hasRequestId: true, remainingTokens: 'v-x-ratelimit-remaining-tokens' });
    expect(first.headers).toEqual(['content-type', 'v-Content-Type', 'content-type', 'v-content-type', 'x-request-id', 'v-X-Request-Id', 'openai-version', 'v-OpenAI-Version']);
    for (let i = 0; i < 3; i++) expect(clientHead(answer())).toEqual(first);
  });

  it('two names with the same cache key keep their own meaning (the cache compares the bytes)', () => {
    // Same length, same first, middle and last two bytes: one is dropped, the other kept.
    const dropped = 'x-ratelimit-ab';
    const kept = 'x-keep-iiiiiab';
    expect(nameKey(Buffer.from(dropped))).toBe(nameKey(Buffer.from(kept)));
    for (let i = 0; i < 2; i++) {
      expect(clientHead([Buffer.from(dropped), Buffer.from('1'), Buffer.from(kept), Buffer.from('2')]).headers).toEqual([kept, '2']);
      expect(clientHead([Buffer.from(kept), Buffer.from('2'), Buffer.from(dropped), Buffer.from('1')]).headers).toEqual([kept, '2']);
    }
  });

  it('many names sharing one cache key are each still read right (the chain is bounded, not the meaning)', () => {
    // Length 14, 'x' first, 'i' in the middle, 'ab' last: one key for all of them.
    const names = Array.from({ length: 40 }, (_, i) => `x-keep-i${String(i).padStart(4, '0')}ab`);
    const keys = new Set(names.map((n) => nameKey(Buffer.from(n))));
    expect(keys.size).toBe(1);
    for (let round = 0; round < 2; round++) {
      const head = clientHead([...names.flatMap((n) => [Buffer.from(n), Buffer.from('v')]), Buffer.from('x-ratelimit-ab'), Buffer.from('1')]);
      expect(head.headers).toEqual(names.flatMap((n) => [n, 'v']));
    }
  });

  it('an upstream sending ever new names: each still read right after the cache is full', () => {
    for (let i = 0; i < 2000; i++) {
      const head = clientHead([Buffer.from(`X-Custom-${i}`), Buffer.from(String(i)), Buffer.from('Set-Cookie'), Buffer.from('s'), Buffer.from('X-Ratelimit-Limit-Tokens'), Buffer.from('1')]);
      expect(head.headers).toEqual([`x-custom-${i}`, String(i)]);
    }
  });
});
