// Issue 15: retries and failover over a pool of three upstreams, before any byte of the answer
// reached the client. The official SDK with maxRetries: 0 gets a success whenever one upstream
// can serve; a stream cut after its first byte is not replayed; a batch creation is not repeated;
// usage is charged once (the answers' usage and tollgate's token metric agree to the token).
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { parseSamples, sumOf } from '../helpers/prom-text.js';

const MODEL = 'gpt-4.1-nano';
const KEYS = ['sk-pool-a-0123456789', 'sk-pool-b-0123456789', 'sk-pool-c-0123456789'];
const fakes: FakeUpstream[] = [];
let gw: TestGateway;

beforeAll(async () => {
  for (const apiKey of KEYS) fakes.push(await startFakeUpstream({ apiKey }));
  gw = await startGateway({
    upstreamUrl: 'http://127.0.0.1:9/v1',
    config: {
      // `a` is preferred by weight (smooth weighted round robin): it takes the first attempt.
      upstreams: fakes.map((fake, i) => ({ id: 'abc'[i] as string, url: fake.url, api_key: KEYS[i], weight: i === 0 ? 100 : 1, headers_timeout_ms: 2_000 })),
      retry: { max_attempts: 3, base_backoff_ms: 1, max_backoff_ms: 5 },
      outlier_detection: { consecutive_failures: 0 },
      limits: { default_output_tokens: 16 },
    },
  });
});
afterAll(async () => {
  await gw?.close();
  for (const fake of fakes) await fake.close();
});
beforeEach(() => {
  for (const fake of fakes) fake.reset();
});

const chat = (client: OpenAI = gw.client()) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello pool' }] }).withResponse();
const calls = (fake: FakeUpstream, path = '/v1/chat/completions') => fake.requests.filter((r) => r.path === path).length;
const tokens = async (): Promise<number> => sumOf(parseSamples(await (await fetch(`${gw.origin}/metrics`)).text()), 'tollgate_tokens_total', { key: 'test-key' });

describe('failover before the first byte', () => {
  it('succeeds while one upstream serves: 503 on a, a reset on b, c answers; each upstream got its own credential', async () => {
    fakes[0]?.always({ status: 503 });
    fakes[1]?.always({ reset: true });
    for (let i = 0; i < 3; i++) {
      const { data, response } = await chat();
      expect(data.choices[0]?.message.content).toBeTruthy();
      expect(response.headers.get('x-tollgate-upstream')).toMatch(/^c; attempts=[23]$/);
    }
    expect(calls(fakes[2] as FakeUpstream)).toBe(3);
    for (const [i, fake] of fakes.entries()) for (const r of fake.requests) expect(r.headers.authorization).toBe(`Bearer ${KEYS[i]}`);
    const line = gw.logs.filter((l) => l.msg === 'request').at(-1);
    expect(line).toMatchObject({ upstream: 'c', status: 200 });
    expect(gw.rawLogs()).not.toContain(KEYS[2]);
  });

  it('passes the answer on when the upstream says x-should-retry: false', async () => {
    fakes[0]?.script({ status: 429, headers: { 'x-should-retry': 'false' } });
    const refused = await chat().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect(fakes.map((f) => calls(f))).toEqual([1, 0, 0]);
  });

  it('gives the last answer when every attempt failed (max_attempts bounds them)', async () => {
    for (const fake of fakes) fake.always({ status: 502 });
    const failed = await chat().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect((failed as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(fakes.reduce((n, f) => n + calls(f), 0)).toBe(3);
  });

  it('fails over from an upstream that hangs before its head', async () => {
    fakes[0]?.script({ hang: true });
    const { response } = await chat();
    expect(response.headers.get('x-tollgate-upstream')).toMatch(/^[bc]; attempts=2$/);
  });

  it('charges usage once: the answers’ usage and the token metric agree to the token', async () => {
    const before = await tokens();
    fakes[0]?.script({ status: 503 }, { status: 500 }, { reset: true });
    let used = 0;
    for (let i = 0; i < 3; i++) {
      const { data } = await chat();
      used += (data.usage?.prompt_tokens ?? 0) + (data.usage?.completion_tokens ?? 0);
    }
    expect(used).toBeGreaterThan(0);
    expect((await tokens()) - before).toBe(used);
  });
});

describe('what is never replayed', () => {
  it('a stream cut after its first byte reaches the client as an error and is not sent again', async () => {
    fakes[0]?.script({ cutAfter: 2 });
    const stream = await gw.client().chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream' }], stream: true });
    const received: string[] = [];
    const outcome = await (async () => {
      for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((e: unknown) => e);
    expect(outcome).toBeInstanceOf(Error);
    expect(received.length).toBeGreaterThan(0);
    expect(fakes.map((f) => calls(f))).toEqual([1, 0, 0]);
  });

  it('a batch creation the upstream received (reset, 503) is not repeated, nor sent to another upstream', async () => {
    const client = gw.client();
    const file = await client.files.create({ file: await toFile(Buffer.from('{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4.1-nano","messages":[]}}\n'), 'b.jsonl'), purpose: 'batch' });
    fakes[0]?.script({ reset: true }, { status: 503 });
    const create = () => client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(await create().catch((e: unknown) => e)).toBeInstanceOf(OpenAI.APIError);
    expect(await create().catch((e: unknown) => e)).toBeInstanceOf(OpenAI.InternalServerError);
    expect(fakes.map((f) => calls(f, '/v1/batches'))).toEqual([2, 0, 0]);
    // Unscripted, it goes through once.
    await create();
    expect(calls(fakes[0] as FakeUpstream, '/v1/batches')).toBe(3);
  });
});

describe('a pool of one (the single `upstream:` form)', () => {
  let fake: FakeUpstream;
  let one: TestGateway;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    one = await startGateway({ upstreamUrl: fake.url, config: { retry: { max_attempts: 3, base_backoff_ms: 1 } } });
  });
  afterAll(async () => {
    await one?.close();
    await fake?.close();
  });

  it('retries the same upstream after the retry-after-ms it names', async () => {
    fake.script({ status: 429, headers: { 'retry-after-ms': '30' } }, { status: 503 });
    const { response } = await chat(one.client());
    expect(response.headers.get('x-tollgate-upstream')).toBe('default; attempts=3');
    expect(calls(fake)).toBe(3);
    expect(one.logs.filter((l) => l.msg === 'request').at(-1)).toMatchObject({ upstream: 'default', attempts: 3, status: 200 });
  });
});
