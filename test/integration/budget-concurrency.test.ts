// A hard budget under concurrency (issue 5, acceptance): 50 concurrent requests through two gateway
// instances sharing one Redis, against a key whose total budget covers ten and a half of them. The
// atomic admission reserves each request's maximum cost, so the settled spend never passes the
// budget, and the budget ends used to within one request's cost.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { usageKey } from '../../src/quota/charge.js';
import { windowsAt } from '../../src/quota/windows.js';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const PREFIX = uniquePrefix('budget-concurrency');
const MODEL = 'gpt-4.1-nano';
const OUTPUT = 100;
const BODY = { model: MODEL, messages: [{ role: 'user', content: 'How much does this cost?' }], max_tokens: OUTPUT };
const INPUT = estimateTokens(promptChars(BODY), 4);
/** nano-dollars: input at $0.10 per 1M, output at $0.40 per 1M. */
const REQUEST_COST = INPUT * 100 + OUTPUT * 400;
const BUDGET_NANO = Math.round(10.5 * REQUEST_COST);
const secret = (id: string) => `tg-budget-${id}-0123456789`;
const KEYS = [
  { id: 'exact', key: secret('exact'), tier: 'tier-5' as const, budget_usd: { total: BUDGET_NANO / 1e9 } },
  { id: 'cheaper', key: secret('cheaper'), tier: 'tier-5' as const, budget_usd: { daily: BUDGET_NANO / 1e9 } },
];

let upstream: FakeUpstream;
let gateways: TestGateway[] = [];
let redis: Redis;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  const config = { keys: KEYS, limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 } };
  gateways = await Promise.all([0, 1].map(() => startGateway({ upstreamUrl: upstream.url, redisUrl: inject('redisUrl'), config })));
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await upstream?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
});

async function post(i: number, id: string, headers: Record<string, string>): Promise<{ status: number; code: string | undefined }> {
  const gateway = gateways[i % gateways.length] as TestGateway;
  const res = await fetch(`${gateway.url}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret(id)}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(BODY),
  });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code };
}

const field = async (id: string, window: string, name: string): Promise<number> => Number((await redis.hget(usageKey(PREFIX, id, window), name)) ?? 0);

describe('a tiny budget under 50 concurrent requests', () => {
  it('usage = reservation: exactly ten admitted, the settled spend ends within one request of the budget, never above', async () => {
    // The fake reports exactly what was reserved (input = the estimate, output = the cap), slowly,
    // so the 50 requests overlap in flight.
    const headers = { 'x-fake-prompt-tokens': String(INPUT), 'x-fake-chunks': String(OUTPUT), 'x-fake-latency-ms': '100' };
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post(i, 'exact', headers)));
    const admitted = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 429 && a.code === 'insufficient_quota').length;
    expect({ admitted, refused }).toEqual({ admitted: 10, refused: 40 });
    // Settlement follows the answer's last byte: wait for it to land.
    await vi.waitFor(async () => expect(await field('exact', 'total', 'cost_nano')).toBe(10 * REQUEST_COST));
    const spend = await field('exact', 'total', 'spend_nano');
    expect(spend).toBe(10 * REQUEST_COST);
    expect(spend).toBeLessThanOrEqual(BUDGET_NANO);
    expect(BUDGET_NANO - spend).toBeLessThan(REQUEST_COST);
    expect(await field('exact', 'total', 'requests')).toBe(10);
  });

  // Rounds of 50 requests until the budget refuses: how many depends on nothing but the budget,
  // how long they take on a shared machine does not; a generous bound.
  it('usage below the reservation: bursts then single requests until refused; the spend never passes the budget', { timeout: 120_000 }, async () => {
    // Each request reserves REQUEST_COST but really costs a tenth of its output.
    const headers = { 'x-fake-prompt-tokens': String(INPUT), 'x-fake-chunks': String(OUTPUT / 10), 'x-fake-latency-ms': '50' };
    const realCost = INPUT * 100 + (OUTPUT / 10) * 400;
    let admitted = 0;
    let round = 0;
    // The daily windows as the gateway names them (src/quota/windows.ts): every day the test
    // touched (two around midnight UTC), the budget holds in each.
    const days = new Set([windowsAt(Date.now())[0].id]);
    for (;;) {
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post(i, 'cheaper', headers)));
      expect(answers.filter((a) => !(a.status === 200 || (a.status === 429 && a.code === 'insufficient_quota')))).toEqual([]);
      const now = answers.filter((a) => a.status === 200).length;
      admitted += now;
      const day = windowsAt(Date.now())[0].id;
      days.add(day);
      await vi.waitFor(async () => expect(await field('cheaper', 'total', 'spend_nano')).toBe(admitted * realCost), { timeout: 10_000 });
      for (const each of days) expect(await field('cheaper', each, 'spend_nano')).toBeLessThanOrEqual(BUDGET_NANO);
      const spend = await field('cheaper', day, 'spend_nano');
      if (now === 0) {
        // Refused with nothing in flight: what is left is less than one request's maximum cost.
        expect(BUDGET_NANO - spend).toBeLessThan(REQUEST_COST);
        break;
      }
      expect(++round).toBeLessThan(50);
    }
    expect(admitted).toBeGreaterThan(10);
  });
});
