// Settlement against real Redis (issue 3, point 3): after each answer the TPM bucket holds the
// real usage, not the reservation; upstream errors and timeouts release the tokens exactly once
// while the request still counts; a client that leaves mid-stream is charged its input estimate
// (plus the output relayed), never the full reservation. The tests read the buckets in Redis.
//
// Keys have tiny limits (60 TPM, 60 RPM: one unit per second of refill) so that a bucket's state
// pins down the units charged to within the seconds the test took (consumptions() in
// helpers/buckets.ts: exactly, when the first charge came within a second; on a busy machine the
// candidates widen by one unit per second of delay, and the expected charge is among them).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';
import { bucketKey, type BucketKind, consumptions, readBucket, redisNowMs, WINDOW_MS } from '../helpers/buckets.js';

import { startGateway, type TestGateway, useGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const MODEL = 'gpt-4.1-nano';
const PREFIX = uniquePrefix('rate-settle');
const LIMIT = 60;
const IDS = ['json', 'sse', 'responses', 'err500', 'timeout', 'abort', 'abort-output'];
const secret = (id: string) => `tg-${id}-secret-0123456789`;
const KEYS = IDS.map((id) => ({ id, key: secret(id), tier: 'tier-1' as const, limits: { rpm: LIMIT, rpd: null, tpm: LIMIT } }));
const CONFIG = { keys: KEYS, limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 } };

// Real usage scripted on the fake: 10 prompt tokens (4 of them cached, which still count) + 4 output.
const KNOBS = { 'x-fake-prompt-tokens': '10', 'x-fake-cached-tokens': '4', 'x-fake-chunks': '4' };
const REAL = 14;
const MAX_TOKENS = 30;
const CHAT = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: MAX_TOKENS };
const CHAT_INPUT = estimateTokens(promptChars(CHAT), 4);
const RESERVED = CHAT_INPUT + MAX_TOKENS;

const fx = useGateway(() => ({ redisUrl: inject('redisUrl'), config: CONFIG, resetEachTest: false }));
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

const auth = (id: string) => ({ authorization: `Bearer ${secret(id)}`, 'content-type': 'application/json' });

/** The units a key's bucket may have been charged since `since` (Redis time just before its first request), fewest first. */
async function chargedTo(id: string, kind: BucketKind, since: number): Promise<number[]> {
  const state = await readBucket(redis, bucketKey(PREFIX, id, kind), LIMIT, WINDOW_MS[kind]);
  return consumptions(state, LIMIT, WINDOW_MS[kind], since, LIMIT * 2);
}

/** Wait until the bucket shows `units` charged (settlement runs after the answer ends). */
async function expectCharged(id: string, kind: BucketKind, since: number, units: number): Promise<void> {
  await expect.poll(() => chargedTo(id, kind, since), { timeout: 10_000, interval: 20 }).toContain(units);
}

/**
 * A later request of the same key, answered and settled: the key's calls reach Redis in order on
 * one hash tag, so whatever an earlier request still had to settle has landed by then.
 */
async function settledAfter(gw: TestGateway, id: string, since: number, units: number): Promise<void> {
  expect((await postChat(gw, id, CHAT, KNOBS)).status).toBe(200);
  await expectCharged(id, 'tpm', since, units);
}

async function postChat(gw: TestGateway, id: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: { ...auth(id), ...headers }, body: JSON.stringify(body) });
}

describe('settled to the real usage, not the reservation', () => {
  it('non-stream JSON: prompt (cached included) + completion', async () => {
    const since = await redisNowMs(redis);
    const { data, response } = await fx.gateway
      .client({ apiKey: secret('json') })
      .chat.completions.create({ ...CHAT, messages: [{ role: 'user', content: 'hi' }] }, { headers: KNOBS })
      .withResponse();
    expect(data.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 4, prompt_tokens_details: { cached_tokens: 4 } });
    // At admission the whole reservation was taken …
    expect(response.headers.get('x-ratelimit-remaining-tokens')).toBe(String(LIMIT - RESERVED));
    // … and settlement gave back all but the real usage.
    await expectCharged('json', 'tpm', since, REAL);
    await expectCharged('json', 'rpm', since, 1);
  });

  it('chat stream with include_usage', async () => {
    const since = await redisNowMs(redis);
    const stream = await fx.gateway.client({ apiKey: secret('sse') }).chat.completions.create(
      { ...CHAT, messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } },
      { headers: KNOBS },
    );
    let usage: unknown;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 4 });
    await expectCharged('sse', 'tpm', since, REAL);
  });

  it('responses stream: from the terminal event', async () => {
    const since = await redisNowMs(redis);
    const stream = await fx.gateway
      .client({ apiKey: secret('responses') })
      .responses.create({ model: MODEL, input: 'hi', max_output_tokens: MAX_TOKENS, stream: true }, { headers: KNOBS });
    let usage: unknown;
    for await (const event of stream) if (event.type === 'response.completed') usage = event.response.usage;
    expect(usage).toMatchObject({ input_tokens: 10, output_tokens: 4 });
    await expectCharged('responses', 'tpm', since, REAL);
  });
});

describe('failures settle exactly once', () => {
  it('upstream 500: tokens released once, the request still counts', async () => {
    const since = await redisNowMs(redis);
    // A first answer leaves 14 tokens charged, so a second release would show (the bucket is not full).
    expect((await postChat(fx.gateway, 'err500', CHAT, KNOBS)).status).toBe(200);
    await expectCharged('err500', 'tpm', since, REAL);
    const failed = await postChat(fx.gateway, 'err500', CHAT, { ...KNOBS, 'x-fake-status': '500' });
    expect(failed.status).toBe(500);
    expect(failed.headers.get('x-ratelimit-limit-tokens')).toBe(String(LIMIT));
    expect(failed.headers.get('x-ratelimit-remaining-tokens')).toBe(String(LIMIT - REAL - RESERVED));
    await failed.text();
    await expectCharged('err500', 'tpm', since, REAL);
    await expectCharged('err500', 'rpm', since, 2);
    // Released exactly once: a later release would show before the next request's settlement.
    await settledAfter(fx.gateway, 'err500', since, 2 * REAL);
  });

  it('upstream timeout (504): tokens released once, the request still counts', async () => {
    const gw = await startGateway({ upstreamUrl: fx.upstream.url, redisUrl: inject('redisUrl'), config: { ...CONFIG, upstream: { headers_timeout_ms: 300 }, retry: { max_attempts: 1 } } });
    try {
      const since = await redisNowMs(redis);
      expect((await postChat(gw, 'timeout', CHAT, KNOBS)).status).toBe(200);
      await expectCharged('timeout', 'tpm', since, REAL);
      const slow = await postChat(gw, 'timeout', CHAT, { ...KNOBS, 'x-fake-latency-ms': '2000' });
      expect(slow.status).toBe(504);
      await slow.text();
      await expectCharged('timeout', 'tpm', since, REAL);
      await expectCharged('timeout', 'rpm', since, 2);
      await settledAfter(gw, 'timeout', since, 2 * REAL);
    } finally {
      await gw.close();
    }
  });
});

/** Open a slow stream, read `deltas` content chunks, then leave; returns the text received. */
async function leaveMidStream(id: string, deltas: number): Promise<string> {
  const controller = new AbortController();
  const res = await fetch(`${fx.gateway.url}/chat/completions`, {
    method: 'POST',
    headers: { ...auth(id), 'x-fake-chunks': '40', 'x-fake-chunk-delay-ms': '40' },
    body: JSON.stringify({ ...CHAT, max_tokens: 50, stream: true }),
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while ((text.match(/"content":"[^"]/g) ?? []).length < deltas) {
    const { done, value } = await reader.read();
    if (done) throw new Error('stream ended before the client left');
    text += decoder.decode(value, { stream: true });
  }
  controller.abort();
  await reader.cancel().catch(() => undefined);
  return text;
}

describe('a client that leaves mid-stream', () => {
  const reserved = CHAT_INPUT + 50;

  it('is charged at least its input estimate, never the full reservation', async () => {
    const since = await redisNowMs(redis);
    await leaveMidStream('abort', 3);
    // Some charge between the input estimate and the reservation is consistent with the bucket.
    const between = (units: number[]) => units.filter((u) => u >= CHAT_INPUT && u < reserved);
    await vi.waitFor(async () => expect(between(await chargedTo('abort', 'tpm', since))).not.toEqual([]), { timeout: 10_000, interval: 20 });
    // Settled once: it stays there after the key's next request settled (less than its reservation more).
    expect((await postChat(fx.gateway, 'abort', CHAT, KNOBS)).status).toBe(200);
    await vi.waitFor(async () => expect((await chargedTo('abort', 'tpm', since)).filter((u) => u >= CHAT_INPUT + REAL && u < reserved + REAL)).not.toEqual([]), {
      timeout: 10_000,
      interval: 20,
    });
  });

  it('is charged the output relayed before it left on top of the input estimate (issue 3, point 3)', async () => {
    const since = await redisNowMs(redis);
    // Eight deltas of "héllo " / "wörld 👋 ": at least a dozen tokens of text reached the client.
    await leaveMidStream('abort-output', 8);
    await vi.waitFor(
      async () => expect((await chargedTo('abort-output', 'tpm', since)).filter((u) => u > CHAT_INPUT && u < reserved)).not.toEqual([]),
      { timeout: 10_000, interval: 20 },
    );
  });
});
