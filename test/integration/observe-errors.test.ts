// Issue 20, fault 4: an exception on the logging and metrics path (here: a log destination that
// throws, as pino's synchronous destination does on a full disk) must not take the process down.
// It is counted in tollgate_internal_errors_total{during} and logged; the gateway keeps serving.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { configFromObject } from '../../src/config/load.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY } from '../helpers/gateway.js';
import { parseSamples, sumOf } from '../helpers/prom-text.js';

let upstream: FakeUpstream;
let app: FastifyInstance;
let origin: string;
const written: Record<string, unknown>[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
  // The request line fails to write; every other line is kept.
  const logStream = {
    write(line: string): void {
      if (line.includes('"msg":"request"')) throw new Error('ENOSPC: no space left on device, write');
      for (const text of line.split('\n')) if (text.trim()) written.push(JSON.parse(text) as Record<string, unknown>);
    },
  };
  app = await buildApp({
    config: configFromObject({ keys: [{ id: 'test-key', key: CLIENT_KEY, tier: 'tier-1' }] }),
    upstreamUrl: upstream.url,
    upstreamApiKey: UPSTREAM_KEY,
    logLevel: 'info',
    logStream,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

// Read from the registry, not GET /metrics: that request's own log line would fail too.
const internalErrors = async (): Promise<number> =>
  sumOf(parseSamples(await app.metrics.registry.metrics()), 'tollgate_internal_errors_total', { during: 'observe' });

describe('an exception while a finished request is logged', () => {
  it('is counted and logged, and the gateway keeps answering (answered and abandoned requests alike)', async () => {
    const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
    const body = { model: 'gpt-4.1-nano', messages: [{ role: 'user' as const, content: 'hi' }] };
    const answered = await client.chat.completions.create(body);
    expect(answered.object).toBe('chat.completion');
    await expect.poll(internalErrors).toBe(1);

    // A client that leaves before the answer: observed after the close, in setImmediate.
    const leaving = new AbortController();
    const gone = client.chat.completions.create(body, { signal: leaving.signal, headers: { 'x-fake-latency-ms': '5000' } });
    await expect.poll(() => upstream.requests.length).toBe(2);
    leaving.abort();
    await expect(gone).rejects.toThrow();
    await expect.poll(internalErrors).toBe(2);

    expect((await client.chat.completions.create(body)).object).toBe('chat.completion');
    await expect.poll(internalErrors).toBe(3);
    const logged = written.filter((line) => line.msg === 'internal error on the logging or metrics path');
    expect(logged.map((line) => line.during)).toEqual(['observe', 'observe', 'observe']);
    expect(logged[0]).toMatchObject({ level: 50, err: { message: 'ENOSPC: no space left on device, write' } });
  });
});
