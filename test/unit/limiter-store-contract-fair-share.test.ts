// Fair share of a ceiling (issue 15, item 6): the process-memory store and the Redis store
// (lua/fair-share.lua against a real redis-server) behave alike. Real time: the ceiling is scaled
// (6M TPM: 100 tokens per ms) and the windows shortened so a run takes seconds; the code under test
// is the one the gateway runs. Clients never assume a speed: a refused one waits what the store
// advertised, and the figures are tokens admitted within a measured span.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import { createRedisStore } from '../../src/limits/redis-store.js';
import type { BucketCall, LimiterStore, ShareClaim, SharedCall, SharedOutcome } from '../../src/limits/store.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const MINUTE = 60_000;
const TPM = 6_000_000;
const PER_MS = TPM / MINUTE;
const COST = 2_000;
const SETTINGS = { activeMs: 1_000, burstMs: 1_000 };
const A: ShareClaim = { entity: 'key:a', weight: 3, priority: 0 };
const B: ShareClaim = { entity: 'key:b', weight: 1, priority: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type SharedStore = LimiterStore & Required<Pick<LimiterStore, 'admitShared' | 'settleShared'>>;

function contract(name: string, prefix: string, factory: () => SharedStore, second: () => SharedStore, teardown: () => Promise<void>): void {
  describe(`shared ceiling contract: ${name}`, () => {
    const store = factory();
    let n = 0;
    const ceiling = () => {
      const tag = `${prefix}{up|u${++n}|gpt-4.1-nano}`;
      const bucket = (units: number, limit = TPM): BucketCall => ({ key: `${tag}:tpm`, limit, windowMs: MINUTE, units });
      const call = (claim: ShareClaim, units: number, waits = 0, limit = TPM): SharedCall => ({ buckets: [bucket(units, limit)], stateKey: `${tag}:share`, claim, settings: SETTINGS, maxWaitMs: waits });
      return { bucket, call };
    };
    afterAll(async () => {
      await store.close();
      await teardown();
    });

    /** A client saturating the ceiling until `stop()`: it records when each admission came. */
    function client(target: SharedStore, make: (units: number) => SharedCall) {
      const admitted: number[] = [];
      let running = true;
      const done = (async () => {
        while (running) {
          const outcome = await target.admitShared(make(COST));
          if (outcome.allowed) admitted.push(performance.now());
          else await sleep(outcome.waitMs);
        }
      })();
      return {
        stop: async () => {
          running = false;
          await done;
        },
        tokens: (from: number, to: number) => admitted.filter((at) => at >= from && at < to).length * COST,
      };
    }

    it('two entities of weights 3 and 1 saturating one ceiling get 75% / 25%; when one stops, the other takes ≥ 95% of it', async () => {
      const { bucket, call } = ceiling();
      // The ceiling's stored burst is spent first (through the plain script: the same bucket).
      // From then on the bucket holds only what refills (Redis emptied it after this instant).
      const emptied = performance.now();
      expect((await store.admit([bucket(TPM)])).allowed).toBe(true);
      const a = client(store, (units) => call(A, units));
      const b = client(store, (units) => call(B, units));
      const start = performance.now();
      await sleep(3_000);
      const stopped = performance.now();
      await a.stop();
      await sleep(3_000);
      const end = performance.now();
      await b.stop();
      // Contention: measured from 1 s in (both active, guarantees earned) to the stop.
      const ta = a.tokens(start + 1_000, stopped);
      const tb = b.tokens(start + 1_000, stopped);
      expect(ta / (ta + tb)).toBeGreaterThanOrEqual(0.7);
      expect(ta / (ta + tb)).toBeLessThanOrEqual(0.8);
      // B alone, once A is no longer active (1 s): at least 95% of the ceiling's rate.
      const from = stopped + SETTINGS.activeMs + 500;
      expect(b.tokens(from, end)).toBeGreaterThanOrEqual((end - from) * PER_MS * 0.95 - COST);
      // Never more than the ceiling's rate since it was emptied (plus one request's rounding). Only
      // admissions answered before `end`: B runs on until it sees its stop.
      expect(a.tokens(0, end) + b.tokens(0, end)).toBeLessThanOrEqual((end - emptied) * PER_MS + COST);
    }, 30_000);

    it('an entity alone borrows the whole ceiling; a newcomer starts with no guarantee and earns it', async () => {
      const { call } = ceiling();
      let admitted = 0;
      while ((await store.admitShared(call(B, 100_000))).allowed) admitted += 100_000;
      expect(admitted).toBeGreaterThanOrEqual(TPM);
      expect(admitted).toBeLessThanOrEqual(TPM + 100_000);
      // What B left (less than one of its requests, and what refilled since) is less than A asks.
      const ask = 200_000;
      const first = await store.admitShared(call(A, ask));
      expect(first.allowed).toBe(false);
      // What its 429 reports left: less than it asked for (B's unused guarantee is not A's).
      expect(Math.floor((first.levels[0] as number) / MINUTE)).toBeLessThan(ask);
      // A's guarantee refills at 3/4 of the rate: it waits at most its whole ask at that rate.
      expect(first.waitMs).toBeGreaterThan(0);
      expect(first.waitMs).toBeLessThanOrEqual(Math.ceil((ask * MINUTE) / Math.floor((TPM * 3) / 4)));
      await sleep(first.waitMs + 2);
      expect(await store.admitShared(call(A, ask))).toMatchObject({ allowed: true });
    });

    it('a settlement gives unused tokens back to the ceiling and to the entity’s guarantee; a release gives back the whole', async () => {
      const { call } = ceiling();
      const held = await store.admitShared(call(B, TPM));
      expect(held).toMatchObject({ allowed: true, borrowed: true });
      expect((await store.admitShared(call(B, 50_000))).allowed).toBe(false);
      const levels = await store.settleShared(call(B, 60_000));
      expect(Math.floor((levels[0] as number) / MINUTE)).toBeGreaterThanOrEqual(60_000);
      expect((await store.admitShared(call(B, 50_000))).allowed).toBe(true);
    });

    it('a waiting request of a higher priority goes before the lower ones of its group', async () => {
      const { call } = ceiling();
      const low: ShareClaim = { entity: 'group:team', weight: 1, priority: 0 };
      const high: ShareClaim = { entity: 'group:team', weight: 1, priority: 5 };
      while ((await store.admitShared(call(low, 100_000))).allowed);
      const refused = await store.admitShared(call(high, 100_000, 10_000));
      expect(refused.allowed).toBe(false);
      await sleep(refused.waitMs + 2);
      // The low one finds room in the bucket, but the high one waited for it: refused.
      const lowTries = await store.admitShared(call(low, 100_000));
      expect(lowTries.allowed).toBe(false);
      expect(await store.admitShared(call(high, 100_000, 10_000))).toMatchObject({ allowed: true });
      // A request that does not wait leaves no marker.
      const quiet: ShareClaim = { entity: 'group:other', weight: 1, priority: 9 };
      while ((await store.admitShared(call(quiet, 100_000))).allowed);
      const notWaiting = await store.admitShared(call(quiet, 100_000, 0));
      await sleep(notWaiting.waitMs + 2);
      expect(await store.admitShared(call({ ...quiet, priority: 0 }, 100_000))).toMatchObject({ allowed: true });
    }, 30_000);

    it('two instances on one store keep the sum of admissions within the ceiling exactly', async () => {
      const { call } = ceiling();
      const other = second();
      try {
        const limit = 40;
        const started = performance.now();
        const outcomes: SharedOutcome[] = await Promise.all(
          Array.from({ length: 120 }, (_, i) => ((i % 2 === 0 ? store : other) as SharedStore).admitShared(call(i % 3 === 0 ? A : B, 1, 0, limit))),
        );
        const elapsed = performance.now() - started;
        const admitted = outcomes.filter((o) => o.allowed).length;
        // 40 per minute: the stored burst, plus one per 1.5 s of the run.
        expect(admitted).toBeGreaterThanOrEqual(limit);
        expect(admitted).toBeLessThanOrEqual(limit + Math.floor(elapsed / 1_500) + 1);
      } finally {
        if (other !== store) await other.close();
      }
    });
  });
}

const memory = createMemoryStore() as SharedStore;
contract('memory', uniquePrefix('share-memory'), () => memory, () => memory, async () => {});

const redis = new Redis(inject('redisUrl'));
const redis2 = new Redis(inject('redisUrl'));
const redisPrefix = uniquePrefix('share-redis');
contract('redis', redisPrefix, () => createRedisStore(redis) as SharedStore, () => createRedisStore(redis2) as SharedStore, async () => {
  await deleteByPrefix(redis, redisPrefix);
  await redis.quit();
  await redis2.quit();
});

describe('shared ceiling storage in Redis', () => {
  it('keeps the state hash as long as its longest-active entity (a waiting one included), then lets it expire', async () => {
    const probe = new Redis(inject('redisUrl'));
    try {
      const store = createRedisStore(probe) as SharedStore;
      const tag = `${redisPrefix}{up|ttl|gpt-4.1-nano}`;
      const call = (claim: ShareClaim, units: number, maxWaitMs = 0): SharedCall => ({
        buckets: [{ key: `${tag}:tpm`, limit: 60_000, windowMs: MINUTE, units }],
        stateKey: `${tag}:share`,
        claim,
        settings: SETTINGS,
        maxWaitMs,
      });
      expect((await store.admitShared(call(A, 60_000))).allowed).toBe(true);
      // A waits about 10 s for its next request: it stays active that long, and the hash with it.
      const waiting = await store.admitShared(call(A, 10_000, 60_000));
      expect(waiting.allowed).toBe(false);
      expect(waiting.waitMs).toBeGreaterThan(5_000);
      await store.admitShared(call(B, 1));
      expect(await probe.pttl(`${tag}:share`)).toBeGreaterThan(waiting.waitMs);
      expect(await probe.hlen(`${tag}:share`)).toBe(2);
    } finally {
      await probe.quit();
    }
  });
});
