// Issue 19: every /v1 answer carries `Server-Timing: tollgate;dur=…, upstream;dur=…` (what the
// gateway added, and the upstream's share up to the head); answers without an upstream call
// (refusals, cache hits) carry the tollgate entry alone; `server.server_timing: false` turns it
// off. Real Redis, the fake upstream, the openai SDK.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';

const MODEL = 'gpt-4.1-nano';
const PLAIN = 'tg-timing-plain-0123456789abcdef';
const CACHED = 'tg-timing-cached-0123456789abcdef';
const ONE_RPM = 'tg-timing-one-rpm-0123456789abcdef';
const NUMBER = String.raw`\d+(?:\.\d{1,2})?`;
const WITH_UPSTREAM = new RegExp(`^tollgate;dur=(${NUMBER}), upstream;dur=(${NUMBER})$`);
const GATEWAY_ONLY = new RegExp(`^tollgate;dur=${NUMBER}$`);

let upstream: FakeUpstream;
const chat = (content: string): OpenAI.ChatCompletionCreateParamsNonStreaming => ({ model: MODEL, messages: [{ role: 'user', content }] });

async function gatewayWith(serverTiming: boolean | undefined): Promise<TestGateway> {
  return startGateway({
    upstreamUrl: upstream.url,
    redisUrl: inject('redisUrl'),
    config: {
      ...(serverTiming === undefined ? {} : { server: { server_timing: serverTiming } }),
      limits: { key_prefix: uniquePrefix('server-timing') },
      keys: [
        { id: 'plain', key: PLAIN, tier: 'tier-1' },
        { id: 'cached', key: CACHED, tier: 'tier-1', cache: { ttl_s: 60 } },
        { id: 'one-rpm', key: ONE_RPM, tier: 'tier-1', limits: { rpm: 1 } },
      ],
    },
  });
}

/** The header of a refused request (the SDK throws an APIError carrying the answer's headers). */
async function refusedHeader(promise: Promise<unknown>): Promise<string | null> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.APIError);
  return (err as InstanceType<typeof OpenAI.APIError>).headers?.get('server-timing') ?? null;
}

beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

describe('Server-Timing on (the default)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await gatewayWith(undefined);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("names the gateway's and the upstream's share of a chat answer", async () => {
    const client = gw.client({ apiKey: PLAIN });
    const { response } = await client.chat.completions
      .create(chat('timing'), { headers: { 'x-fake-latency-ms': '40' } })
      .withResponse();
    const match = WITH_UPSTREAM.exec(response.headers.get('server-timing') ?? '');
    expect(match).not.toBeNull();
    // The upstream waited 40 ms before its head: that is upstream time, not the gateway's.
    expect(Number(match?.[2])).toBeGreaterThanOrEqual(40);
  });

  it("is sent with a stream's head: the gateway's overhead before the first byte", async () => {
    const client = gw.client({ apiKey: PLAIN });
    const { data: stream, response } = await client.chat.completions
      .create({ ...chat('timing stream'), stream: true }, { headers: { 'x-fake-chunks': '3', 'x-fake-latency-ms': '30' } })
      .withResponse();
    const match = WITH_UPSTREAM.exec(response.headers.get('server-timing') ?? '');
    expect(match).not.toBeNull();
    expect(Number(match?.[2])).toBeGreaterThanOrEqual(30);
    let finish: string | null | undefined;
    for await (const chunk of stream) finish ??= chunk.choices[0]?.finish_reason;
    expect(finish).toBe('stop');
  });

  it('is on an upstream error relayed to the client', async () => {
    const client = gw.client({ apiKey: PLAIN });
    const header = await refusedHeader(client.chat.completions.create(chat('timing 500'), { headers: { 'x-fake-status': '400' } }));
    expect(header).toMatch(WITH_UPSTREAM);
  });

  it('names only the gateway when no upstream call was made: a cache hit, a 429, an unknown model', async () => {
    const cached = gw.client({ apiKey: CACHED });
    const first = await cached.chat.completions.create(chat('timing cache')).withResponse();
    expect(first.response.headers.get('server-timing')).toMatch(WITH_UPSTREAM);
    const hit = await cached.chat.completions.create(chat('timing cache')).withResponse();
    expect(hit.response.headers.get('x-tollgate-cache')).toBe('hit');
    expect(hit.response.headers.get('server-timing')).toMatch(GATEWAY_ONLY);

    const limited = gw.client({ apiKey: ONE_RPM });
    await limited.chat.completions.create(chat('timing rpm'));
    expect(await refusedHeader(limited.chat.completions.create(chat('timing rpm')))).toMatch(GATEWAY_ONLY);

    const plain = gw.client({ apiKey: PLAIN });
    expect(await refusedHeader(plain.chat.completions.create({ ...chat('x'), model: 'gpt-nope' }))).toMatch(GATEWAY_ONLY);
  });
});

describe('Server-Timing off (server.server_timing: false)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await gatewayWith(false);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('is absent from answers, streams, cache hits and refusals', async () => {
    const plain = gw.client({ apiKey: PLAIN });
    const answer = await plain.chat.completions.create(chat('off')).withResponse();
    expect(answer.response.status).toBe(200);
    expect(answer.response.headers.has('server-timing')).toBe(false);

    const streamed = await plain.chat.completions.create({ ...chat('off stream'), stream: true }).withResponse();
    for await (const chunk of streamed.data) void chunk;
    expect(streamed.response.headers.has('server-timing')).toBe(false);

    const cached = gw.client({ apiKey: CACHED });
    await cached.chat.completions.create(chat('off cache'));
    const hit = await cached.chat.completions.create(chat('off cache')).withResponse();
    expect(hit.response.headers.get('x-tollgate-cache')).toBe('hit');
    expect(hit.response.headers.has('server-timing')).toBe(false);

    expect(await refusedHeader(plain.chat.completions.create({ ...chat('x'), model: 'gpt-nope' }))).toBeNull();
  });
});
