// Built-in tool calls in Responses answers are priced per call (issue 21, item 3): a web search at
// $0.01 and a file search at $0.0025 (OpenAI's list prices), on top of the model's tokens, counted
// from the answer's output items whether it comes as one JSON body (compact or indented, as
// OpenAI's are) or as a stream; charged once against the key's budget and shown in the cost metric
// under unit="calls".
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { usageKey } from '../../src/quota/charge.js';
import { useGateway } from '../helpers/gateway.js';
import { nanoOf, parseSamples } from '../helpers/prom-text.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const PREFIX = uniquePrefix('tool-calls');
const secret = (id: string): string => `tg-tools-${id}-0123456789abcdef`;
const IDS = ['json', 'pretty', 'stream', 'none', 'budget'] as const;
type Id = (typeof IDS)[number];

const fx = useGateway(() => ({
  redisUrl: inject('redisUrl'),
  config: {
    keys: IDS.map((id) => ({ id, key: secret(id), tier: 'tier-5' as const, budget_usd: { total: id === 'budget' ? 0.05 : 10 } })),
    limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 },
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

const spent = async (id: Id, field = 'cost_nano'): Promise<number> => Number((await redis.hget(usageKey(PREFIX, id, 'total'), field)) ?? 0);
async function settled(id: Id): Promise<void> {
  await vi.waitFor(async () => expect(await spent(id, 'spend_nano')).toBe(await spent(id)));
}

// gpt-4.1-nano: $0.10 / 1M input (100 nano a token), $0.40 / 1M output (400 nano a token).
const TOKENS = 10 * 100 + 5 * 400;
const WEB = 10_000_000;
const FILE = 2_500_000;
const KNOBS = { 'x-fake-prompt-tokens': '10', 'x-fake-chunks': '5', 'x-fake-web-search-calls': '2', 'x-fake-file-search-calls': '1' };
const REQUEST = { model: 'gpt-4.1-nano', input: 'what is new?', tools: [{ type: 'web_search' as const }] };

describe('built-in tool calls are priced per call', () => {
  it('a JSON answer with two web searches and a file search costs its tokens + 2 × $0.01 + $0.0025, compact or indented', async () => {
    const compact = await fx.gateway.client({ apiKey: secret('json') }).responses.create(REQUEST, { headers: KNOBS });
    expect(compact.output.map((item) => item.type)).toEqual(['web_search_call', 'web_search_call', 'file_search_call', 'message']);
    const pretty = await fx.gateway.client({ apiKey: secret('pretty') }).responses.create(REQUEST, { headers: { ...KNOBS, 'x-fake-pretty': '1' } });
    expect(pretty.output).toHaveLength(4);
    await settled('json');
    await settled('pretty');
    expect(await spent('json')).toBe(TOKENS + 2 * WEB + FILE);
    expect(await spent('pretty')).toBe(TOKENS + 2 * WEB + FILE);
  });

  it('a stream is priced from its terminal event, once', async () => {
    const stream = await fx.gateway.client({ apiKey: secret('stream') }).responses.create({ ...REQUEST, stream: true }, { headers: KNOBS });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe('response.completed');
    await settled('stream');
    expect(await spent('stream')).toBe(TOKENS + 2 * WEB + FILE);
  });

  it('an answer without tool calls costs its tokens only', async () => {
    await fx.gateway.client({ apiKey: secret('none') }).responses.create({ model: 'gpt-4.1-nano', input: 'hi' }, { headers: { 'x-fake-prompt-tokens': '10', 'x-fake-chunks': '5' } });
    await settled('none');
    expect(await spent('none')).toBe(TOKENS);
  });

  it('the cost metric shows the calls under type="tool_calls", unit="calls", exact to the nano-dollar', async () => {
    const samples = parseSamples(await (await fetch(`${fx.gateway.origin}/metrics`)).text());
    const calls = (key: string): number => nanoOf(samples, 'tollgate_cost_usd_total', { key, type: 'tool_calls', unit: 'calls' });
    expect({ json: calls('json'), pretty: calls('pretty'), stream: calls('stream'), none: calls('none') }).toEqual({ json: 2 * WEB + FILE, pretty: 2 * WEB + FILE, stream: 2 * WEB + FILE, none: 0 });
  });

  it('tool calls count against the budget: a $0.05 budget is spent by searches and the next request is refused', async () => {
    const ask = () => fx.gateway.client({ apiKey: secret('budget') }).responses.create(REQUEST, { headers: { ...KNOBS, 'x-fake-file-search-calls': '0' } });
    await ask();
    await settled('budget');
    await ask();
    await settled('budget');
    await ask();
    await settled('budget');
    // Three answers with two searches each: $0.06 of calls on a $0.05 budget (a reservation covers
    // tokens; the calls an answer reports are charged when it settles).
    expect(await spent('budget')).toBe(3 * (TOKENS + 2 * WEB));
    await expect(ask()).rejects.toMatchObject({ status: 429, code: 'insufficient_quota' });
  });
});
