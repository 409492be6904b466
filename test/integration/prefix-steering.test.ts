// Issue 6: prefix steering sets a prompt_cache_key (tg-<fingerprint>-<shard>) on prompts long
// enough for OpenAI's prompt cache, never overrides the client's own, leaves short prompts byte
// for byte alone, and opens shards as a fingerprint's rate passes shard_rpm. Prefix affinity sends
// one fingerprint to one of several upstream targets, and spills over under load.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, CLIENT_KEY, type TestGateway } from '../helpers/gateway.js';
import { LONG_SYSTEM_PROMPT, post } from '../helpers/cache.js';

const MODEL = 'gpt-4.1-nano';
const CHAT = '/v1/chat/completions';
const KEY_PATTERN = /^tg-[0-9a-f]{16}-\d+$/;

const sentBody = (upstream: FakeUpstream, index = -1): Record<string, unknown> =>
  JSON.parse((upstream.requests.at(index) as { body: Buffer }).body.toString('utf8')) as Record<string, unknown>;

describe('prefix steering', () => {
  let upstream: FakeUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    upstream = await startFakeUpstream();
    gw = await startGateway({ upstreamUrl: upstream.url, config: { caching: { prefix_steering: { shard_rpm: 2 } } } });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });
  beforeEach(() => upstream.reset());

  const ask = (system: string, user: string, extra: Record<string, unknown> = {}) =>
    post(gw, CHAT, CLIENT_KEY, { model: MODEL, messages: [{ role: 'system', content: system }, { role: 'user', content: user }], ...extra });

  it('sets a prompt_cache_key from the stable head of a long prompt, the same for every request sharing it', async () => {
    const client = gw.client();
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'system', content: LONG_SYSTEM_PROMPT }, { role: 'user', content: 'first question' }] });
    const key = sentBody(upstream).prompt_cache_key as string;
    expect(key).toMatch(KEY_PATTERN);
    expect(key.endsWith('-0')).toBe(true);
    await client.responses.create({ model: MODEL, instructions: LONG_SYSTEM_PROMPT, input: 'a question through responses' });
    expect(sentBody(upstream).prompt_cache_key).toMatch(KEY_PATTERN);
    // Another user question under the same system prompt: the same fingerprint.
    await ask(LONG_SYSTEM_PROMPT, 'second question');
    expect((sentBody(upstream).prompt_cache_key as string).slice(0, 19)).toBe(key.slice(0, 19));
    // Another system prompt: another fingerprint.
    await ask(LONG_SYSTEM_PROMPT.replace('support', 'returns'), 'third question');
    expect((sentBody(upstream).prompt_cache_key as string).slice(0, 19)).not.toBe(key.slice(0, 19));
  });

  it('never overrides the client’s own prompt_cache_key, and leaves short prompts byte for byte', async () => {
    await ask(LONG_SYSTEM_PROMPT, 'mine', { prompt_cache_key: 'client-own-key' });
    expect(sentBody(upstream).prompt_cache_key).toBe('client-own-key');
    const short = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'short prompt' }] });
    await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' }, body: short });
    expect((upstream.requests.at(-1) as { body: Buffer }).body.toString('utf8')).toBe(short);
  });

  it('keeps a streamed request well-formed: the key and the usage request spliced in together', async () => {
    const answer = await ask(LONG_SYSTEM_PROMPT, 'stream please', { stream: true });
    expect(answer.text).toContain('data: [DONE]');
    expect(answer.text).not.toContain('"usage"');
    const body = sentBody(upstream);
    expect(body.prompt_cache_key).toMatch(KEY_PATTERN);
    expect(body.stream_options).toEqual({ include_usage: true });
  });

  it('opens a shard for every shard_rpm requests per minute of one fingerprint', async () => {
    const system = LONG_SYSTEM_PROMPT.replace('shop', 'bakery');
    for (let i = 0; i < 6; i++) await ask(system, `question ${i}`);
    const shards = upstream.requests.map((r) => (JSON.parse(r.body.toString('utf8')) as { prompt_cache_key: string }).prompt_cache_key.split('-').at(-1));
    // Rates 1..6 with shard_rpm 2: 1, 1, 2, 2, 3, 3 shards, handed out in turn.
    expect(shards).toEqual(['0', '0', '0', '1', '1', '2']);
  });
});

describe('prefix affinity over several upstream targets', () => {
  const upstreams: FakeUpstream[] = [];
  let gw: TestGateway;
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) upstreams.push(await startFakeUpstream());
    gw = await startGateway({
      upstreamUrl: 'http://127.0.0.1:9/v1',
      config: { upstream: { targets: upstreams.map((u) => ({ url: u.url })) }, limits: { default_output_tokens: 16 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    for (const u of upstreams) await u.close();
  });
  beforeEach(() => {
    for (const u of upstreams) u.reset();
  });
  const served = (): number[] => upstreams.map((u) => u.requests.length);
  const prompt = (n: number): string => LONG_SYSTEM_PROMPT.replace('shop', `shop number ${n}`);
  const ask = (system: string, user: string, headers: Record<string, string> = {}) =>
    post(gw, CHAT, CLIENT_KEY, { model: MODEL, messages: [{ role: 'system', content: system }, { role: 'user', content: user }] }, headers);

  it('sends every request of one prefix to the same target', async () => {
    const targetsOf = new Map<number, Set<number>>();
    for (let p = 0; p < 6; p++) {
      for (let i = 0; i < 4; i++) {
        const before = served();
        expect((await ask(prompt(p), `q${i}`)).status).toBe(200);
        const target = served().findIndex((n, t) => n > (before[t] ?? 0));
        (targetsOf.get(p) ?? targetsOf.set(p, new Set()).get(p))?.add(target);
      }
    }
    for (const targets of targetsOf.values()) expect(targets.size).toBe(1);
    // Six prefixes over three targets: rendezvous hashing uses more than one.
    expect(new Set([...targetsOf.values()].map((t) => [...t][0])).size).toBeGreaterThan(1);
  });

  it('spills one busy prefix over to other targets (bounded load), and spreads short prompts', async () => {
    const answers = await Promise.all(Array.from({ length: 9 }, (_, i) => ask(prompt(99), `busy ${i}`, { 'x-fake-latency-ms': '300' })));
    expect(answers.map((a) => a.status)).toEqual(Array(answers.length).fill(200));
    const busy = served();
    expect(busy.filter((n) => n > 0).length).toBeGreaterThan(1);
    expect(Math.max(...busy)).toBeLessThan(9);

    for (const u of upstreams) u.reset();
    for (let i = 0; i < 6; i++) await post(gw, CHAT, CLIENT_KEY, { model: MODEL, messages: [{ role: 'user', content: `short ${i}` }] });
    expect(served()).toEqual([2, 2, 2]);
  });
});
