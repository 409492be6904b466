// Issue 14 item 10: slow request bodies were held forever (`requestTimeout: 0`, which keeps long
// streams alive, covered bodies too): 200 sockets sending a byte every 5 s stayed open for 125 s+.
// A body that makes no progress for server.body_idle_timeout_ms gets an OpenAI-shaped 408 and its
// connection closes; a body that keeps trickling in is served, and answers and streams, however
// long and however silent, are never timed.
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';

import { CLIENT_KEY, useGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';

const IDLE_MS = 1_000;
const fx = useGateway({ config: { server: { body_idle_timeout_ms: IDLE_MS } }, resetEachTest: false });

const BODY = Buffer.from(JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'trickle' }] }));

interface RawExchange {
  readonly socket: Socket;
  /** Everything the gateway sent, once it closed the connection. */
  readonly closed: Promise<string>;
  /** Everything the gateway sent so far. */
  readonly received: () => string;
}

/** A raw connection that sends the request head (and `first` bytes of the body) at once. */
function openRequest(first: number): RawExchange {
  const socket = connect(Number(new URL(fx.gateway.origin).port), '127.0.0.1');
  const head =
    'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n' +
    `authorization: Bearer ${CLIENT_KEY}\r\ncontent-type: application/json\r\ncontent-length: ${BODY.length}\r\n\r\n`;
  socket.write(Buffer.concat([Buffer.from(head), BODY.subarray(0, first)]));
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  socket.on('error', () => undefined);
  return { socket, closed, received: () => received };
}

function parse(answer: string): { status: number; head: string; body: unknown } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), head: head.toLowerCase(), body: JSON.parse(body) };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('request body idle timeout', () => {
  it('a body that stops arriving → 408 request_timeout in OpenAI’s envelope, connection closed, nothing forwarded', async () => {
    fx.upstream.reset();
    const exchange = openRequest(10);
    // The gateway closes the connection by itself: nothing here ends it.
    const answer = parse(await exchange.closed);
    expect(answer.status).toBe(408);
    expect(answer.head).toContain('connection: close');
    expect(expectEnvelope(answer.body)).toMatchObject({ type: 'invalid_request_error', code: 'request_timeout', param: null });
    expect(fx.upstream.requests).toEqual([]);
    // Answered once, without a second attempt when the body stream then fails.
    expect(fx.gateway.logs.filter((line) => (line.level as number) >= 40), JSON.stringify(fx.gateway.logs)).toEqual([]);
  });

  it('a body that keeps trickling in (a byte well within the timeout, each time) is served', async () => {
    fx.upstream.reset();
    const exchange = openRequest(0);
    // The whole body takes several timeouts' worth of time, but never stalls for one.
    for (let sent = 0; sent < BODY.length; sent += 4) {
      exchange.socket.write(BODY.subarray(sent, sent + 4));
      await pause(IDLE_MS / 10);
    }
    const text = await Promise.race([exchange.closed, waitFor(exchange, '"chat.completion"')]);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    exchange.socket.destroy();
    expect(fx.upstream.requests).toHaveLength(1);
  });

  it('a stream silent for longer than the timeout, before and between its chunks, is relayed untouched', async () => {
    const res = await fetch(`${fx.gateway.url}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${CLIENT_KEY}`,
        'content-type': 'application/json',
        'x-fake-latency-ms': String(IDLE_MS * 1.5),
        'x-fake-chunks': '1',
        'x-fake-chunk-delay-ms': String(IDLE_MS * 1.5),
      },
      body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'think slowly' }], stream: true }),
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });
});

/** Resolves with what arrived once `marker` is in it. */
function waitFor(exchange: RawExchange, marker: string): Promise<string> {
  // What arrived before this call counts too: the answer may come while the body's last bytes go out.
  return new Promise((resolve) => {
    const check = (): void => {
      if (exchange.received().includes(marker)) resolve(exchange.received());
    };
    check();
    exchange.socket.on('data', () => setImmediate(check));
  });
}
