import { toFile, type OpenAI } from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { nanoOf, parseSamples, samplesOf, sumOf, type Sample } from '../helpers/prom-text.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

// Issue 4, acceptance: a scripted mix through the real openai SDK (non-streaming and streaming
// chat, with and without include_usage, responses JSON and stream, repeated long prefixes the
// upstream reports as cached, embeddings, a batch at the Batch prices) yields
// tollgate_cost_usd_total equal to the hand-computed sum to the nano-dollar, and token counters
// equal to the fake upstream's usage. Two gateway instances share one Redis: the batch's usage
// is counted once, whichever instance sees it completed and however often.

const KEY_A = 'tg-cost-team-a-0123456789abcdef';
const KEY_B = 'tg-cost-team-b-0123456789abcdef';
const NANO = 'gpt-4.1-nano';
const EMBED = 'text-embedding-3-small';

// Catalogue prices as nano-dollars per token ($/1M × 1000), written out by hand.
const PRICE = {
  [NANO]: { input: 100, cached: 25, output: 400, batchInput: 50, batchOutput: 200 },
  [EMBED]: { input: 20, cached: 20, output: 0, batchInput: 10, batchOutput: 0 },
};

/** What the fake upstream is scripted to report for one call. */
interface Scripted {
  readonly key: 'team-a' | 'team-b';
  readonly model: typeof NANO | typeof EMBED;
  readonly prompt: number;
  readonly cached: number;
  readonly output: number;
}

const prefix = uniquePrefix('cost');
const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
let upstream: FakeUpstream;
let gateways: TestGateway[];
const expected: Scripted[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
  const config = {
    limits: { key_prefix: prefix },
    keys: [
      { id: 'team-a', key: KEY_A, tier: 'tier-1' as const },
      { id: 'team-b', key: KEY_B, tier: 'tier-2' as const },
    ],
  };
  gateways = await Promise.all([0, 1].map(() => startGateway({ upstreamUrl: upstream.url, redisUrl: inject('redisUrl'), config })));
});
afterAll(async () => {
  await Promise.all(gateways?.map((g) => g.close()) ?? []);
  await upstream?.close();
  await deleteByPrefix(redis, prefix);
  await redis.quit();
});

const client = (key: string, instance = 0): OpenAI => (gateways[instance] as TestGateway).client({ apiKey: key });
const knobs = (s: Scripted) => ({
  headers: { 'x-fake-prompt-tokens': String(s.prompt), 'x-fake-cached-tokens': String(s.cached), 'x-fake-chunks': String(s.output) },
});
const scripted = (s: Scripted) => {
  expected.push(s);
  return knobs(s);
};

async function scrape(instance: number): Promise<Sample[]> {
  const res = await fetch(`${(gateways[instance] as TestGateway).origin}/metrics`);
  return parseSamples(await res.text());
}

/** The hand-computed cost of a scripted call, in nano-dollars. */
function costOf(s: Scripted, type?: 'input' | 'cached_input' | 'output'): number {
  const p = PRICE[s.model];
  const parts = { input: (s.prompt - s.cached) * p.input, cached_input: s.cached * p.cached, output: s.output * p.output };
  return type ? parts[type] : parts.input + parts.cached_input + parts.output;
}

async function runMix(): Promise<void> {
  const a = client(KEY_A);
  const messages = [{ role: 'user' as const, content: 'What is the capital of France? '.repeat(40) }];
  // Non-streaming chat, then the same long prefix three times, reported ever more cached.
  await a.chat.completions.create({ model: NANO, messages }, scripted({ key: 'team-a', model: NANO, prompt: 1200, cached: 0, output: 7 }));
  for (const cached of [1024, 1152, 1152]) {
    await a.chat.completions.create({ model: NANO, messages }, scripted({ key: 'team-a', model: NANO, prompt: 1300, cached, output: 5 }));
  }
  // Streaming chat without include_usage (tollgate asks upstream for it) and with it.
  for await (const _chunk of await a.chat.completions.create({ model: NANO, messages, stream: true }, scripted({ key: 'team-a', model: NANO, prompt: 300, cached: 0, output: 9 }))) {
    // drain
  }
  const withUsage = await a.chat.completions.create(
    { model: NANO, messages, stream: true, stream_options: { include_usage: true } },
    scripted({ key: 'team-a', model: NANO, prompt: 1500, cached: 1280, output: 4 }),
  );
  for await (const _chunk of withUsage) {
    // drain
  }
  // Responses, JSON and stream.
  await a.responses.create({ model: NANO, input: 'Summarise this.' }, scripted({ key: 'team-a', model: NANO, prompt: 800, cached: 0, output: 6 }));
  const stream = await a.responses.create({ model: NANO, input: 'Summarise this.', stream: true }, scripted({ key: 'team-a', model: NANO, prompt: 2000, cached: 1536, output: 3 }));
  for await (const _event of stream) {
    // drain
  }
  // Embeddings, from the other key and the other instance.
  await client(KEY_B, 1).embeddings.create({ model: EMBED, input: ['one', 'two'] }, scripted({ key: 'team-b', model: EMBED, prompt: 640, cached: 0, output: 0 }));
}

const BATCH = { prompt: 10_000, cached: 4_000, output: 2_500 };

/** A batch created by team-a on instance 0, completed upstream with usage, seen five times on both instances (by both keys). */
async function runBatch(): Promise<void> {
  const a = client(KEY_A);
  const line = JSON.stringify({ custom_id: 'c-1', method: 'POST', url: '/v1/chat/completions', body: { model: NANO, messages: [{ role: 'user', content: 'hi' }] } });
  const file = await a.files.create({ file: await toFile(Buffer.from(`${line}\n`), 'mix.jsonl'), purpose: 'batch' });
  const batch = await a.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  expect((await a.batches.retrieve(batch.id)).status).toBe('validating');
  const usage = { input_tokens: BATCH.prompt, input_tokens_details: { cached_tokens: BATCH.cached }, output_tokens: BATCH.output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: BATCH.prompt + BATCH.output };
  const moved = await fetch(`${upstream.url}/__fake/batches/${batch.id}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'completed', usage }) });
  expect(moved.status).toBe(200);
  await Promise.all([a.batches.retrieve(batch.id), client(KEY_B, 1).batches.retrieve(batch.id), client(KEY_A, 1).batches.retrieve(batch.id)]);
  expect((await a.batches.retrieve(batch.id)).usage?.input_tokens).toBe(BATCH.prompt);
  await client(KEY_B, 1).batches.retrieve(batch.id);
}

describe('cost and tokens in Prometheus', () => {
  let both: Sample[];

  beforeAll(async () => {
    await runMix();
    await runBatch();
    const calls = expected.length;
    // Requests are counted when their response closes: wait until every call is.
    await vi.waitFor(async () => {
      const [s0, s1] = await Promise.all([scrape(0), scrape(1)]);
      const usageCalls = ['/v1/chat/completions', '/v1/responses', '/v1/embeddings'].reduce((n, endpoint) => n + sumOf([...s0, ...s1], 'tollgate_requests_total', { endpoint }), 0);
      expect(usageCalls).toBe(calls);
      both = [...s0, ...s1];
    });
  });

  it('counts the spend of the mix, batch at the Batch prices, equal to the hand-computed sum to the nano-dollar', () => {
    const batchNano = BATCH.prompt * PRICE[NANO].batchInput + BATCH.output * PRICE[NANO].batchOutput;
    const mixNano = expected.reduce((sum, s) => sum + costOf(s), 0);
    expect(nanoOf(both, 'tollgate_cost_usd_total')).toBe(mixNano + batchNano);
    // Per key, model and type.
    const ofA = expected.filter((s) => s.key === 'team-a');
    for (const type of ['input', 'cached_input', 'output'] as const) {
      const batchPart = type === 'input' ? BATCH.prompt * PRICE[NANO].batchInput : type === 'output' ? BATCH.output * PRICE[NANO].batchOutput : 0;
      expect(nanoOf(both, 'tollgate_cost_usd_total', { key: 'team-a', model: NANO, type }), type).toBe(ofA.reduce((sum, s) => sum + costOf(s, type), 0) + batchPart);
    }
    expect(nanoOf(both, 'tollgate_cost_usd_total', { key: 'team-b', model: EMBED })).toBe(640 * PRICE[EMBED].input);
    expect(nanoOf(both, 'tollgate_cost_usd_total', { key: 'team-b', model: NANO })).toBe(0);
  });

  it('counts tokens by type equal to the upstream’s usage (input = prompt − cached), all reported', () => {
    const sum = (pick: (s: Scripted) => number) => expected.reduce((n, s) => n + pick(s), 0);
    expect(sumOf(both, 'tollgate_tokens_total', { type: 'input' })).toBe(sum((s) => s.prompt - s.cached) + BATCH.prompt - BATCH.cached);
    expect(sumOf(both, 'tollgate_tokens_total', { type: 'cached_input' })).toBe(sum((s) => s.cached) + BATCH.cached);
    expect(sumOf(both, 'tollgate_tokens_total', { type: 'output' })).toBe(sum((s) => s.output) + BATCH.output);
    expect(sumOf(both, 'tollgate_tokens_total', { source: 'estimated' })).toBe(0);
    expect(sumOf(both, 'tollgate_tokens_total', { key: 'team-b' })).toBe(640);
  });

  it('counts what cached input saved: cached tokens × (input − cached input price), not for batches', () => {
    const saved = expected.reduce((sum, s) => sum + s.cached * (PRICE[s.model].input - PRICE[s.model].cached), 0);
    expect(saved).toBeGreaterThan(0);
    expect(nanoOf(both, 'tollgate_saved_usd_total', { source: 'prompt_cache' })).toBe(saved);
  });

  it('counts the batch once across instances and retrievals, for the key that created it, and logs it once', () => {
    const lines = gateways.flatMap((g) => g.logs.filter((l) => l.msg === 'batch usage'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ key_id: 'team-a', model: NANO, input_tokens: BATCH.prompt, cached_tokens: BATCH.cached, output_tokens: BATCH.output });
    expect(lines[0]?.cost_nano).toBe(BATCH.prompt * PRICE[NANO].batchInput + BATCH.output * PRICE[NANO].batchOutput);
  });

  it('puts each request’s tokens and cost in its log line, summing to the counters', () => {
    const lines = gateways.flatMap((g) => g.logs.filter((l) => l.msg === 'request' && typeof l.cost_nano === 'number'));
    expect(lines).toHaveLength(expected.length);
    for (const line of lines) {
      expect(line.tokens_source).toBe('reported');
      expect(line.cost_usd).toBe((line.cost_nano as number) / 1e9);
    }
    const batch = gateways.flatMap((g) => g.logs.filter((l) => l.msg === 'batch usage'))[0]?.cost_nano as number;
    expect(lines.reduce((sum, l) => sum + (l.cost_nano as number), 0) + batch).toBe(nanoOf(both, 'tollgate_cost_usd_total'));
  });

  it('exposes time to first token for the calls that reached the upstream, by endpoint', () => {
    const count = (endpoint: string) => sumOf(both, 'tollgate_time_to_first_token_seconds_count', { endpoint });
    expect(count('/v1/chat/completions')).toBe(expected.filter((s) => s.model === NANO).length - 2);
    expect(count('/v1/responses')).toBe(2);
    expect(count('/v1/embeddings')).toBe(1);
  });

  it('shows what each key has left of its limits after its last request', () => {
    const remaining = samplesOf(both, 'tollgate_ratelimit_remaining', { key: 'team-a', model: NANO });
    // team-a's limited calls all went through instance 0; batch calls are not limited.
    expect(remaining.map((s) => s.labels.limit).sort()).toEqual(['rpm', 'tpm']);
    for (const s of remaining) expect(s.value).toBeGreaterThan(0);
    expect(remaining.find((s) => s.labels.limit === 'rpm')?.value).toBeLessThanOrEqual(500);
    expect(remaining.find((s) => s.labels.limit === 'tpm')?.value).toBeLessThanOrEqual(200_000);
  });
});
