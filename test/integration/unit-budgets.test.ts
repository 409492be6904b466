// A $1 budget stops image generation, speech, transcription and video as it stops chat (issue 21,
// item 3): each key below has a total budget of $1 and spends it on one unit-priced endpoint
// through the official SDK, against the fake upstream and a real Redis. Each request reserves its
// quote (the most it can cost from its parameters); its answer settles it. The refusal is the same
// 429 insufficient_quota as chat's, and the spend equals the hand-computed sum to the nano-dollar.
import { Redis } from 'ioredis';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { usageKey } from '../../src/quota/charge.js';
import { useGateway } from '../helpers/gateway.js';
import { nanoOf, parseSamples } from '../helpers/prom-text.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const PREFIX = uniquePrefix('unit-budgets');
const ONE_DOLLAR = 1_000_000_000;
const secret = (id: string): string => `tg-units-${id}-0123456789abcdef`;
const IDS = ['chat', 'dalle', 'gpt-image', 'tts', 'mini-tts', 'whisper', 'transcribe', 'sora', 'sora-pro', 'containers', 'streams'] as const;
type Id = (typeof IDS)[number];

const fx = useGateway(() => ({
  redisUrl: inject('redisUrl'),
  resetEachTest: false,
  config: {
    keys: IDS.map((id) => ({ id, key: secret(id), tier: 'tier-5' as const, budget_usd: { total: 1 } })),
    limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 },
    // An operator's override: whisper-1 at $6 a minute (1000× the list price), so a few small uploads spend $1.
    models: { catalogue: [{ name: 'whisper-1', unit_prices: { per_minute: 6 } }] },
  },
}));
let redis: Redis;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

const client = (id: Id): OpenAI => fx.gateway.client({ apiKey: secret(id) });
const spent = async (id: Id, field = 'cost_nano'): Promise<number> => Number((await redis.hget(usageKey(PREFIX, id, 'total'), field)) ?? 0);
const metrics = async (): Promise<ReturnType<typeof parseSamples>> => parseSamples(await (await fetch(`${fx.gateway.origin}/metrics`)).text());

/** Send until the budget refuses; returns how many were admitted. Every admitted answer is read whole (settlement follows its last byte). */
async function untilRefused(id: Id, send: () => Promise<unknown>): Promise<{ admitted: number; refusal: { status: number; code: unknown; type: unknown; message: string } }> {
  for (let admitted = 0; admitted < 500; admitted++) {
    try {
      await send();
    } catch (err) {
      if (!(err instanceof OpenAI.APIError)) throw err;
      return { admitted, refusal: { status: err.status as number, code: err.code, type: err.type, message: err.message } };
    }
    // Each request is settled (its reservation replaced by its cost) before the next is sent.
    await settled(id);
  }
  throw new Error(`key ${id} was never refused`);
}

/** Nothing of the key is in flight: what is spent or reserved is what is spent. */
async function settled(id: Id): Promise<void> {
  await vi.waitFor(async () => expect(await spent(id, 'spend_nano')).toBe(await spent(id)));
}

/** The refusal of a budget that cannot cover a request's reservation: chat's own (the first test shows it). */
const BUDGET_REFUSAL = { status: 429, code: 'insufficient_quota', type: 'insufficient_quota' };

describe('a $1 budget against unit-priced endpoints', () => {
  it('chat: one answer of 10M prompt tokens at $0.10 per 1M (and 5 output tokens at $0.40) spends the $1; the next is refused with insufficient_quota', async () => {
    const ask = () => client('chat').chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }, { headers: { 'x-fake-prompt-tokens': '10000000' } });
    await ask();
    await settled('chat');
    expect(await spent('chat')).toBe(10_000_000 * 100 + 5 * 400);
    const { admitted, refusal } = await untilRefused('chat', ask);
    expect(admitted).toBe(0);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
  });

  it('dall-e-3 hd 1792x1024 at $0.12 an image: 8 admitted ($0.96), the 9th refused as chat is', async () => {
    const each = 120_000_000;
    const { admitted, refusal } = await untilRefused('dalle', () =>
      client('dalle').images.generate({ model: 'dall-e-3', prompt: 'a lighthouse at dusk', quality: 'hd', size: '1792x1024', n: 1 }),
    );
    expect(admitted).toBe(8);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(refusal.message).toContain('may cost up to $0.12');
    expect(await spent('dalle')).toBe(8 * each);
    const samples = await metrics();
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'dalle', model: 'dall-e-3', unit: 'images', type: 'output' })).toBe(8 * each);
  });

  it('gpt-image-1 by tokens: reserves high quality 1024x1024 (4160 output tokens), settles the reported usage', async () => {
    // Prompt of 9 characters: ceil(9 / 4) = 3 text tokens, at $5 per 1M = 5,000 nano each.
    // Reservation: 3 × 5,000 + 4,160 × 40,000 ($40 per 1M image output tokens) = 166,415,000.
    // The fake reports 3 text input tokens and 272 output tokens: 15,000 + 10,880,000 = 10,895,000.
    const reserved = 3 * 5_000 + 4_160 * 40_000;
    const actual = 3 * 5_000 + 272 * 40_000;
    const { admitted, refusal } = await untilRefused('gpt-image', () =>
      client('gpt-image').images.generate({ model: 'gpt-image-1', prompt: 'a red fox', quality: 'high', size: '1024x1024' }),
    );
    // Admitted while spend + reservation ≤ $1.
    expect(admitted).toBe(Math.floor((ONE_DOLLAR - reserved) / actual) + 1);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(await spent('gpt-image')).toBe(admitted * actual);
    expect(await spent('gpt-image', 'output_tokens')).toBe(admitted * 272);
    const samples = await metrics();
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'gpt-image', model: 'gpt-image-1', unit: 'tokens' })).toBe(admitted * actual);
  });

  it('tts-1 at $15 per 1M characters: 4,000 characters cost $0.06; 16 admitted ($0.96), the 17th refused', async () => {
    const input = 'x'.repeat(4_000);
    const { admitted, refusal } = await untilRefused('tts', async () => {
      const answer = await client('tts').audio.speech.create({ model: 'tts-1', voice: 'alloy', input });
      await answer.arrayBuffer();
    });
    expect(admitted).toBe(16);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(await spent('tts')).toBe(16 * 4_000 * 15_000);
    expect(nanoOf(await metrics(), 'tollgate_cost_usd_total', { key: 'tts', unit: 'characters', type: 'input' })).toBe(16 * 60_000_000);
  });

  it('gpt-4o-mini-tts: the binary answer has no usage, so the estimate is billed (text tokens + 2 audio tokens per character)', async () => {
    // 40,000 characters: 10,000 text tokens at $0.60 per 1M (6,000,000) + 80,000 audio tokens at $12 per 1M (960,000,000).
    const input = 'y'.repeat(40_000);
    const each = 10_000 * 600 + 80_000 * 12_000;
    const { admitted, refusal } = await untilRefused('mini-tts', async () => {
      const answer = await client('mini-tts').audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input });
      await answer.arrayBuffer();
    });
    expect(admitted).toBe(1);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(await spent('mini-tts')).toBe(each);
  });

  it('whisper-1 per minute: reserved by upload size (4,000 bytes a second), billed by the answer duration, by the second', async () => {
    // 16,000 bytes: reserved as 4 s; the fake's audio lasts 1 s (16,000 bytes a second). At the
    // configured $6 a minute (100,000,000 nano a second): reserved 400,000,000, billed 100,000,000.
    const audio = Buffer.alloc(16_000, 1);
    const send = (format: 'json' | 'verbose_json' | 'text') => async () =>
      client('whisper').audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio, 'a.mp3', { type: 'audio/mpeg' }), response_format: format });
    // One verbose_json (its `duration`), one json (`usage.seconds`): 1 s each.
    await send('verbose_json')();
    await vi.waitFor(async () => expect(await spent('whisper')).toBe(100_000_000));
    await send('json')();
    await vi.waitFor(async () => expect(await spent('whisper')).toBe(200_000_000));
    // A text answer states no duration: the reservation (4 s) is billed, counted as estimated.
    await send('text')();
    await vi.waitFor(async () => expect(await spent('whisper')).toBe(600_000_000));
    // $0.40 left: one more reservation of $0.40 fits, then none.
    const { admitted, refusal } = await untilRefused('whisper', send('json'));
    expect(admitted).toBe(1);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(await spent('whisper')).toBe(700_000_000);
    const samples = await metrics();
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'whisper', unit: 'minutes' })).toBe(700_000_000);
  });

  it('gpt-4o-transcribe by the tokens it reports (audio input, text output)', async () => {
    // 400,000 bytes: reserved as 100 s at $0.006 a minute = 10,000,000. The fake reports 400 audio
    // tokens ($6 per 1M: 2,400,000) and ceil("fake transcript of 400000 bytes".length / 4) = 8 output tokens ($10 per 1M: 80,000).
    const audio = Buffer.alloc(400_000, 2);
    const each = 400 * 6_000 + 8 * 10_000;
    const answer = await client('transcribe').audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(audio, 'b.mp3', { type: 'audio/mpeg' }) });
    expect(answer.text).toBe('fake transcript of 400000 bytes');
    await vi.waitFor(async () => expect(await spent('transcribe')).toBe(each));
    expect(await spent('transcribe', 'input_tokens')).toBe(400);
  });

  it('sora-2 at $0.10 a second: 4 s of 720x1280 twice ($0.80), the third refused', async () => {
    const { admitted, refusal } = await untilRefused('sora', () => client('sora').videos.create({ model: 'sora-2', prompt: 'waves', seconds: '4', size: '720x1280' }));
    expect(admitted).toBe(2);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(await spent('sora')).toBe(2 * 4 * 100_000_000);
    expect(nanoOf(await metrics(), 'tollgate_cost_usd_total', { key: 'sora', model: 'sora-2', unit: 'seconds' })).toBe(800_000_000);
  });

  it('sora-2-pro 1792x1024 at $0.50 a second: 4 s cost $2, refused before anything reaches the upstream', async () => {
    const before = fx.upstream.requests.length;
    const { admitted, refusal } = await untilRefused('sora-pro', () => client('sora-pro').videos.create({ model: 'sora-2-pro', prompt: 'waves', seconds: '4', size: '1792x1024' }));
    expect(admitted).toBe(0);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(refusal.message).toContain('may cost up to $2.00');
    expect(fx.upstream.requests.length).toBe(before);
    expect(await spent('sora-pro')).toBe(0);
  });

  it('containers at $0.12 for 4g: 8 admitted ($0.96), then 4g and 64g ($1.92) refused; priced by session without a model', async () => {
    const { admitted, refusal } = await untilRefused('containers', () => client('containers').containers.create({ name: 'sandbox', memory_limit: '4g' }));
    expect(admitted).toBe(8);
    expect(refusal).toMatchObject(BUDGET_REFUSAL);
    expect(refusal.message).toContain('may cost up to $0.12');
    const big = await untilRefused('containers', () => client('containers').containers.create({ name: 'sandbox', memory_limit: '64g' }));
    expect(big.admitted).toBe(0);
    expect(big.refusal.message).toContain('may cost up to $1.92');
    expect(await spent('containers')).toBe(8 * 120_000_000);
    expect(nanoOf(await metrics(), 'tollgate_cost_usd_total', { key: 'containers', unit: 'sessions' })).toBe(8 * 120_000_000);
  });

  it('a budgeted key is refused a model in the wrong unit: a chat model for images, an image model for chat (nothing priced to apply)', async () => {
    const before = fx.upstream.requests.length;
    const refused = async (call: Promise<unknown>): Promise<unknown> =>
      call.then(
        () => 'admitted',
        (err: unknown) => (err instanceof OpenAI.APIError ? { status: err.status, code: err.code, param: err.param } : err),
      );
    expect(await refused(client('sora-pro').images.generate({ model: 'gpt-4.1-nano', prompt: 'x' }))).toEqual({ status: 400, code: 'model_required_by_key_policy', param: 'model' });
    expect(await refused(client('sora-pro').chat.completions.create({ model: 'dall-e-3', messages: [{ role: 'user', content: 'x' }] }))).toEqual({
      status: 400,
      code: 'model_required_by_key_policy',
      param: 'model',
    });
    expect(fx.upstream.requests.length).toBe(before);
  });

  it('streams: the usage of the last event is billed (speech SSE, transcript stream); a cut stream is billed at its quote', async () => {
    // Speech, stream_format sse: 400 characters; the fake reports 100 text tokens ($0.60 per 1M) and 400 audio tokens ($12 per 1M).
    const input = 'z'.repeat(400);
    const speech = await client('streams').audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input, stream_format: 'sse' });
    expect(await speech.text()).toContain('speech.audio.done');
    const speechCost = 100 * 600 + 400 * 12_000;
    await vi.waitFor(async () => expect(await spent('streams')).toBe(speechCost));
    // Cut after two events: no usage, so the quote is billed: 100 text tokens + 2 × 400 audio tokens.
    const cut = await client('streams').audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input, stream_format: 'sse' }, { headers: { 'x-fake-cut-after': '2' } });
    await cut.text().catch(() => undefined);
    const quoted = 100 * 600 + 800 * 12_000;
    await vi.waitFor(async () => expect(await spent('streams')).toBe(speechCost + quoted));
    await settled('streams');
    // A transcript stream of 400,000 bytes: 400 audio tokens and 8 output tokens, as the JSON answer.
    const stream = await client('streams').audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(Buffer.alloc(400_000, 3), 'c.mp3', { type: 'audio/mpeg' }), stream: true });
    let text = '';
    for await (const event of stream) if (event.type === 'transcript.text.done') text = event.text;
    expect(text).toBe('fake transcript of 400000 bytes');
    await vi.waitFor(async () => expect(await spent('streams')).toBe(speechCost + quoted + 400 * 6_000 + 8 * 10_000));
  });
});
