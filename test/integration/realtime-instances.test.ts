// Realtime exactness across instances: two real tollgate processes share one Redis and one fake
// upstream; concurrent sessions of one key on both. Admitted `response.create`s never take more
// than the key's TPM (plus what refilled meanwhile, by Redis time), and a budget's spend equals,
// to the nano-dollar, the sum hand-computed from the usage of every response.done, never above it.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisNowMs, WINDOW_MS } from '../helpers/buckets.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { openRealtime, type RawRealtime } from '../helpers/realtime-client.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { configDir, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const UPSTREAM_KEY = 'sk-upstream-rt-instances-0123456789abcdef';
const TPM_KEY = 'tg-rt-instances-tpm-0123456789abcdef';
const BUDGET_KEY = 'tg-rt-instances-budget-0123456789abcd';
const PREFIX = uniquePrefix('rt-instances');
const TPM = 2000;
const BUDGET_USD = 0.12;
const BUDGET_NANO = 120_000_000;

let upstream: FakeUpstream;
let redisServer: RedisServer;
let redis: Redis;
const configs = configDir();
const procs: TollgateProcess[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  const config = configs.write(
    'rt-instances.yaml',
    `limits:
  key_prefix: "${PREFIX}"
  redis_timeout_ms: 5000
keys:
  - { id: rt-tpm, key: "${TPM_KEY}", tier: tier-5, limits: { rpm: null, rpd: null, tpm: ${TPM} } }
  - { id: rt-budget, key: "${BUDGET_KEY}", tier: tier-5, budget_usd: { total: ${BUDGET_USD} } }
`,
  );
  const env = { TOLLGATE_CONFIG: config, TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY, REDIS_URL: redisServer.url };
  procs.push(...(await Promise.all([startTollgate(env), startTollgate(env)])));
}, 180_000);
afterAll(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill()));
  await redis?.quit();
  await redisServer?.stop();
  await upstream?.close();
  configs.cleanup();
});

const open = (instance: number, key: string): Promise<RawRealtime> =>
  openRealtime(`ws://127.0.0.1:${procs[instance]?.port}/v1/realtime?model=gpt-realtime`, undefined, { headers: { authorization: `Bearer ${key}` } });

async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

const logLines = (msg: string): Record<string, unknown>[] =>
  procs.flatMap((p) =>
    p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg),
  );

/** gpt-realtime's prices (per 1M tokens: text 4 / 0.4 cached / 16 out, audio 32 / 0.4 cached / 64 out) in nano-dollars per token. */
function handCost(usage: Record<string, unknown>): number {
  const input = usage.input_token_details as { text_tokens: number; audio_tokens: number; cached_tokens_details: { text_tokens: number; audio_tokens: number } };
  const output = usage.output_token_details as { text_tokens: number; audio_tokens: number };
  const cachedText = input.cached_tokens_details.text_tokens;
  const cachedAudio = input.cached_tokens_details.audio_tokens;
  return (input.text_tokens - cachedText) * 4_000 + cachedText * 400 + (input.audio_tokens - cachedAudio) * 32_000 + cachedAudio * 400 + output.text_tokens * 16_000 + output.audio_tokens * 64_000;
}

describe('realtime: two instances, one Redis', () => {
  it('TPM: concurrent response.creates of one key on both instances take the bucket once (never more than it holds plus the refill)', { timeout: 120_000 }, async () => {
    const SESSIONS = 8;
    const EACH = 4;
    const CAP = 100;
    const sessions = await Promise.all(Array.from({ length: SESSIONS }, (_, i) => open(i % 2, TPM_KEY)));
    await Promise.all(sessions.map((rt) => rt.next('session.created')));
    const firstUpstream = upstream.realtime.sessions.length - SESSIONS;
    const since = await redisNowMs(redis);
    // An empty conversation: each reserves 0 estimated input + its cap. The responses run until the
    // sessions close, so no settlement gives tokens back during the burst.
    for (const [s, rt] of sessions.entries()) {
      for (let j = 0; j < EACH; j++) rt.send({ type: 'response.create', event_id: `evt_${s}_${j}`, response: { max_output_tokens: CAP, metadata: { fake_deltas: '1000000', fake_delay_ms: '200' } } });
    }
    const ours = upstream.realtime.sessions.slice(firstUpstream);
    const forwarded = (): number => ours.reduce((n, rec) => n + rec.events.filter((e) => e.type === 'response.create').length, 0);
    const refusedEvents = (): Record<string, unknown>[] => sessions.flatMap((rt) => rt.events.filter((e) => e.type === 'error'));
    // Every response.create decided: forwarded upstream or refused with an error event.
    await until(() => forwarded() + refusedEvents().length === SESSIONS * EACH);
    const until_ = await redisNowMs(redis);
    const admitted = forwarded();
    for (const e of refusedEvents()) expect(e.error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' });
    const refilled = Math.floor(((until_ - since) * TPM) / WINDOW_MS.tpm);
    expect(admitted).toBeGreaterThanOrEqual(TPM / CAP);
    expect(admitted * CAP).toBeLessThanOrEqual(TPM + refilled);
    // (Buckets per instance would have admitted all 32: twice the TPM.)
    for (const rt of sessions) rt.ws.close();
    await Promise.all(sessions.map((rt) => rt.closed));
    // Each admitted response is settled once (cut by the close: at its estimate).
    await until(() => logLines('realtime response').filter((l) => l.key_id === 'rt-tpm').length === admitted);
  });

  it('budget: text and audio turns on both instances; the spend equals the hand-computed sum of every response, and never passes the budget', { timeout: 180_000 }, async () => {
    const SESSIONS = 6;
    const TURNS = 6;
    const done: Record<string, unknown>[] = [];
    let refused = 0;
    const run = async (s: number): Promise<void> => {
      const rt = await open(s % 2, BUDGET_KEY);
      await rt.next('session.created');
      for (let turn = 0; turn < TURNS; turn++) {
        const mark = rt.events.length;
        const audio = (s + turn) % 2 === 1;
        if (audio) {
          rt.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(8000 + 800 * s, turn).toString('base64') });
          rt.send({ type: 'input_audio_buffer.commit' });
        } else {
          rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(200 + 40 * turn) }] } });
        }
        rt.send({ type: 'response.create', event_id: `b_${s}_${turn}`, response: { max_output_tokens: 200, output_modalities: audio ? ['audio'] : ['text'], metadata: { fake_deltas: String(2 + ((s + turn) % 4)), fake_cached_text: String(turn * 10) } } });
        // The turn's answer: its response.done, or the refusal of its response.create.
        await until(() => rt.events.slice(mark).some((e) => e.type === 'response.done' || (e.type === 'error' && (e.error as { event_id?: unknown }).event_id === `b_${s}_${turn}`)));
        const answer = rt.events.slice(mark).find((e) => e.type === 'response.done');
        if (answer) done.push(answer);
        else {
          const error = rt.events.slice(mark).find((e) => e.type === 'error');
          expect(error?.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
          refused++;
        }
      }
      rt.ws.close();
      await rt.closed;
    };
    await Promise.all(Array.from({ length: SESSIONS }, (_, s) => run(s)));
    // The test can fail both ways: some turns admitted, some refused by the budget.
    expect(done.length).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);

    const expected = done.reduce((sum, e) => sum + handCost((e.response as { usage: Record<string, unknown> }).usage), 0);
    await until(() => logLines('realtime response').filter((l) => l.key_id === 'rt-budget').length === done.length);
    const logged = logLines('realtime response').filter((l) => l.key_id === 'rt-budget');
    expect(logged.every((l) => l.tokens_source === 'reported')).toBe(true);
    expect(logged.reduce((sum, l) => sum + (l.cost_nano as number), 0)).toBe(expected);
    // Redis holds exactly that (settlements are asynchronous: wait for them), no reservation left over.
    const spend = async (): Promise<number> => Number((await redis.hget(`${PREFIX}{rt-budget}|usage:total`, 'spend_nano')) ?? 0);
    await until(async () => (await spend()) === expected);
    expect(await spend()).toBeLessThanOrEqual(BUDGET_NANO);
  });
});
