// Issue 14 item 15: what Node's HTTP parser refuses (control characters in headers, conflicting
// Content-Length / Transfer-Encoding, headers over the size limit, a malformed request line) was
// answered in fastify's own shape ({"error":"Bad Request","message":"Client Error",...}). Every
// such answer is now in OpenAI's envelope, with the right status, and the connection closes.
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY, useGateway } from '../helpers/gateway.js';
import { expectEnvelope, expectStillServing } from '../helpers/openai-errors.js';

const fx = useGateway({ resetEachTest: false });

/** Writes `bytes` on a fresh connection; resolves with all the gateway sent once it closed the connection. */
function exchange(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(fx.gateway.origin).port), '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
    socket.write(Buffer.from(bytes, 'latin1'));
  });
}

function parse(answer: string): { status: number; head: string; body: unknown } {
  const split = answer.indexOf('\r\n\r\n');
  const head = answer.slice(0, split);
  return { status: Number(head.split(' ')[1]), head: head.toLowerCase(), body: JSON.parse(answer.slice(split + 4)) };
}

const JSON_BODY = '{"model":"gpt-4.1-nano","messages":[{"role":"user","content":"hi"}]}';
const head = (extra: string) =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${CLIENT_KEY}\r\ncontent-type: application/json\r\n${extra}`;

const CASES: { name: string; bytes: string; status: number; code: string }[] = [
  {
    name: 'a control character in a header value',
    bytes: head(`x-note: a\u0001b\r\ncontent-length: ${JSON_BODY.length}\r\n\r\n${JSON_BODY}`),
    status: 400,
    code: 'invalid_http_request',
  },
  {
    name: 'both Content-Length and Transfer-Encoding',
    bytes: head(`content-length: ${JSON_BODY.length}\r\ntransfer-encoding: chunked\r\n\r\n${JSON_BODY.length.toString(16)}\r\n${JSON_BODY}\r\n0\r\n\r\n`),
    status: 400,
    code: 'invalid_http_request',
  },
  {
    name: 'headers over the size limit',
    bytes: head(`x-big: ${'a'.repeat(20_000)}\r\ncontent-length: ${JSON_BODY.length}\r\n\r\n${JSON_BODY}`),
    status: 431,
    code: 'request_header_fields_too_large',
  },
  { name: 'a malformed request line', bytes: 'HELLO THERE\r\n\r\n', status: 400, code: 'invalid_http_request' },
];

describe('HTTP parse errors answer in OpenAI’s envelope', () => {
  for (const c of CASES) {
    it(`${c.name} → ${c.status} ${c.code}, connection closed`, async () => {
      fx.upstream.reset();
      const answer = parse(await exchange(c.bytes));
      expect(answer.status).toBe(c.status);
      expect(answer.head).toContain('content-type: application/json');
      expect(answer.head).toContain('connection: close');
      expect(expectEnvelope(answer.body)).toMatchObject({ type: 'invalid_request_error', code: c.code, param: null });
      expect(fx.upstream.requests).toEqual([]);
      await expectStillServing(fx.gateway);
    });
  }
});
