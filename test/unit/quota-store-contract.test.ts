// The counters of the limiter's storage (issue 5, point 3): usage-hash fields checked against caps in
// the same atomic admission as the buckets, on the memory store and on Redis (lua/limits.lua
// against a real redis-server). Both must behave alike.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import { createRedisStore } from '../../src/limits/redis-store.js';
import type { BucketCall, CounterCall, LimiterStore } from '../../src/limits/store.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const DAY = 86_400_000;

function counterContract(name: string, prefix: string, store: LimiterStore, teardown: () => Promise<void>, ttlOf: (key: string) => Promise<number>): void {
  describe(`counters: ${name}`, () => {
    let n = 0;
    const tag = () => `${prefix}{key-${++n}}`;
    afterAll(async () => {
      await store.close();
      await teardown();
    });

    it('a capped counter admits while value + units <= cap, then refuses (index after the buckets), taking nothing', async () => {
      const t = tag();
      const bucket: BucketCall = { key: `${t}|m:rpd`, limit: 100, windowMs: DAY, units: 1 };
      const spend: CounterCall = { key: `${t}|usage:d`, field: 'spend', cap: 1000, units: 400, ttlMs: 60_000 };
      const count: CounterCall = { key: `${t}|usage:d`, field: 'requests', units: 1, ttlMs: 60_000 };
      const first = await store.admit([bucket], [spend, count]);
      expect(first).toMatchObject({ allowed: true, refusing: -1, values: [400, 1] });
      expect((await store.admit([bucket], [spend, count])).values).toEqual([800, 2]);
      const refused = await store.admit([bucket], [spend, count]);
      expect(refused).toMatchObject({ allowed: false, refusing: 1, waitMs: 0, values: [800, 2] });
      // Nothing taken from the bucket by the refusal: 98 requests left.
      expect(Math.floor((refused.levels[0] as number) / DAY)).toBe(98);
      expect(await store.read([`${t}|usage:d`, `${t}|usage:none`])).toEqual([{ spend: 800, requests: 2 }, {}]);
      expect(await ttlOf(`${t}|usage:d`)).toBeGreaterThan(50_000);
    });

    it('a bucket refusal leaves the counters untouched; a counter refuses before a bucket that would make it wait', async () => {
      const t = tag();
      const bucket: BucketCall = { key: `${t}|m:rpd`, limit: 1, windowMs: DAY, units: 1 };
      const tokens: CounterCall = { key: `${t}|usage:m`, field: 'tokens', cap: 10, units: 6 };
      expect((await store.admit([bucket], [tokens])).allowed).toBe(true);
      const byBucket = await store.admit([bucket], [{ ...tokens, units: 1 }]);
      expect(byBucket).toMatchObject({ allowed: false, refusing: 0 });
      expect(byBucket.waitMs).toBeGreaterThan(0);
      expect(await store.read([`${t}|usage:m`])).toEqual([{ tokens: 6 }]);
      const byCounter = await store.admit([bucket], [tokens]);
      expect(byCounter).toMatchObject({ allowed: false, refusing: 1, waitMs: 0 });
    });

    it('settle adds counter units (negative too) beside bucket corrections, past the cap if usage says so', async () => {
      const t = tag();
      const bucket: BucketCall = { key: `${t}|m:tpm`, limit: 1000, windowMs: DAY, units: 500 };
      const spend: CounterCall = { key: `${t}|usage:total`, field: 'spend', cap: 100, units: 90 };
      await store.admit([bucket], [spend]);
      const down = await store.settle([{ ...bucket, units: 400 }], [{ ...spend, units: -50 }, { key: `${t}|usage:total`, field: 'cost', units: 40 }]);
      expect(down.slice(1)).toEqual([40, 40]);
      expect(Math.floor((down[0] as number) / DAY)).toBe(900);
      const up = await store.settle([], [{ key: `${t}|usage:total`, field: 'spend', units: 300 }]);
      expect(up).toEqual([340]);
      expect((await store.admit([], [{ ...spend, units: 0 }])).allowed).toBe(false);
      // A counter-only admission without a cap always passes.
      expect((await store.admit([], [{ key: `${t}|usage:total`, field: 'requests', units: 1 }])).allowed).toBe(true);
    });

    it('one turn of admissions with counters: each sees the values its predecessors left, at nano-dollar sizes', async () => {
      const t = tag();
      // A $5,000 cap in nano-dollars (5e12): past 32-bit integers, exact below 2^53.
      const cap = 5_000_000_000_000;
      const bucket: BucketCall = { key: `${t}|m:rpd`, limit: 1000, windowMs: DAY, units: 1 };
      const spend = (units: number): CounterCall => ({ key: `${t}|usage:m`, field: 'spend', cap, units, ttlMs: 60_000 });
      const requests: CounterCall = { key: `${t}|usage:m`, field: 'requests', units: 1, ttlMs: 60_000 };
      const costs = [2_000_000_000_001, 3_500_000_000_000, 2_999_999_999_999, 1];
      const outcomes = await Promise.all(costs.map((units) => store.admit([bucket], [spend(units), requests])));
      // 2e12 + 1 fits; 3.5e12 would pass the cap; 3e12 − 1 reaches it exactly; then 1 more is over.
      expect(outcomes.map((o) => o.allowed)).toEqual([true, false, true, false]);
      expect(outcomes.map((o) => o.values)).toEqual([
        [2_000_000_000_001, 1],
        [2_000_000_000_001, 1],
        [cap, 2],
        [cap, 2],
      ]);
      expect(outcomes.map((o) => o.refusing)).toEqual([-1, 1, -1, 1]);
      // Only the admitted took a request from the bucket.
      expect(outcomes.map((o) => Math.floor((o.levels[0] as number) / DAY))).toEqual([999, 999, 998, 998]);
      expect(await store.read([`${t}|usage:m`])).toEqual([{ spend: cap, requests: 2 }]);
      expect(await store.settle([], [{ ...spend(-1_234_567_890_123), cap: undefined }])).toEqual([cap - 1_234_567_890_123]);
    });
  });
}

const redisUrl = inject('redisUrl');
const redis = new Redis(redisUrl);
const redisPrefix = uniquePrefix('quota-store');
counterContract('redis', redisPrefix, createRedisStore(redis), async () => {
  await deleteByPrefix(redis, redisPrefix);
  await redis.quit();
}, (key) => redis.pttl(key));

let memoryNow = Date.parse('2026-01-01T00:00:00Z');
const memory = createMemoryStore(() => memoryNow);
counterContract('memory', 'm:', memory, async () => {}, async (key) => {
  // The memory store's expiry, seen through its clock: alive 50 s on, gone past 60 s.
  const before = memoryNow;
  const alive = async (ms: number) => {
    memoryNow = before + ms;
    const found = (await memory.read([key]))[0] ?? {};
    return Object.keys(found).length > 0;
  };
  const ttl = (await alive(50_001)) && !(await alive(60_001)) ? 55_000 : 0;
  memoryNow = before;
  return ttl;
});
