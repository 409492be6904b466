// One contract for the limiter's storage (issue 3, point 7): the in-memory store and the Redis
// store (lua/limits.lua against a real redis-server) must behave alike. Levels are
// in unit-milliseconds (units × window), so every figure below is an exact integer.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import { createRedisStore, defineLimiterCommands, SETTLE_DELAY_MS } from '../../src/limits/redis-store.js';
import type { AdmitOutcome, BucketCall, LimiterStore } from '../../src/limits/store.js';
import { redisNowMs } from '../helpers/buckets.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const DAY = 86_400_000;
const MINUTE = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whole units left in a bucket at `level` (what x-ratelimit-remaining-* shows). */
const units = (level: number, windowMs: number) => Math.floor(level / windowMs);

/** The wait the contract promises for a refusal: (need − level) / limit, rounded up to a whole ms. */
function expectedWait(call: BucketCall, level: number): number {
  return Math.ceil((call.units * call.windowMs - level) / call.limit);
}

/** After a refusal: wait what it advertised and retry, until admitted; returns how many more refusals came. */
async function admitAfterWaiting(store: LimiterStore, calls: BucketCall[], refusal: AdmitOutcome): Promise<number> {
  let last = refusal;
  for (let refusals = 0; refusals < 10; refusals++) {
    // +2 ms: a timer may fire a millisecond early against a clock that rounds down.
    await sleep(last.waitMs + 2);
    last = await store.admit(calls);
    if (last.allowed) return refusals;
  }
  throw new Error('never admitted after waiting the advertised time ten times');
}

function storeContract(name: string, prefix: string, factory: () => LimiterStore, teardown: () => Promise<void>): void {
  describe(`limiter store contract: ${name}`, () => {
    const store = factory();
    let n = 0;
    /** A fresh bucket key under the file's prefix, every bucket of one test under one {hash tag}. */
    const tag = () => `${prefix}{key-${++n}|gpt-4.1-nano}`;
    const bucket = (key: string, limit: number, windowMs: number, cost: number): BucketCall => ({ key, limit, windowMs, units: cost });

    afterAll(async () => {
      await store.close();
      await teardown();
    });

    it('a bucket admits exactly `limit` units, then refuses', async () => {
      const call = bucket(`${tag()}:rpd`, 5, DAY, 1);
      const remaining: number[] = [];
      for (let i = 0; i < 5; i++) {
        const outcome = await store.admit([call]);
        expect(outcome).toMatchObject({ allowed: true, refusing: -1, waitMs: 0 });
        remaining.push(units(outcome.levels[0] as number, DAY));
      }
      expect(remaining).toEqual([4, 3, 2, 1, 0]);
      const refused = await store.admit([call]);
      expect(refused.allowed).toBe(false);
      expect(refused.refusing).toBe(0);
      expect(units(refused.levels[0] as number, DAY)).toBe(0);
    });

    it('a cost larger than what is left is refused whole, and the bucket keeps what it had', async () => {
      const call = bucket(`${tag()}:tpm`, 1000, DAY, 700);
      expect((await store.admit([call])).allowed).toBe(true);
      const refused = await store.admit([call]);
      expect(refused.allowed).toBe(false);
      expect(units(refused.levels[0] as number, DAY)).toBe(300);
      const smaller = await store.admit([{ ...call, units: 300 }]);
      expect(smaller.allowed).toBe(true);
      expect(units(smaller.levels[0] as number, DAY)).toBe(0);
    });

    it('all or nothing: a refusal by one bucket leaves the others untouched', async () => {
      const t = tag();
      const wide = bucket(`${t}:rpm`, 10, DAY, 1);
      const narrow = bucket(`${t}:rpd`, 2, DAY, 1);
      const tokens = bucket(`${t}:tpm`, 100, DAY, 10);
      const all = [wide, narrow, tokens];
      expect((await store.admit(all)).allowed).toBe(true);
      expect((await store.admit(all)).allowed).toBe(true);
      for (let i = 0; i < 3; i++) {
        const refused = await store.admit(all);
        expect(refused.allowed).toBe(false);
        expect(refused.refusing).toBe(1);
        expect(refused.levels.map((level) => units(level, DAY))).toEqual([8, 0, 80]);
      }
      // The wide and token buckets still hold exactly what two admissions left them.
      for (let i = 0; i < 8; i++) expect((await store.admit([wide])).allowed).toBe(true);
      expect((await store.admit([wide])).allowed).toBe(false);
      const rest = await store.admit([{ ...tokens, units: 80 }]);
      expect(rest.allowed).toBe(true);
      expect(units(rest.levels[0] as number, DAY)).toBe(0);
    });

    it('the refusal names the bucket with the longest wait, and the wait is (need − level) / limit', async () => {
      const t = tag();
      const requests = bucket(`${t}:rpm`, 3, MINUTE, 1);
      const tokens = bucket(`${t}:tpm`, 1000, MINUTE, 600);
      expect((await store.admit([requests, tokens])).allowed).toBe(true);
      // Tokens refuse alone: 600 needed, about 400 left.
      const byTokens = await store.admit([requests, tokens]);
      expect(byTokens.allowed).toBe(false);
      expect(byTokens.refusing).toBe(1);
      expect(byTokens.waitMs).toBe(expectedWait(tokens, byTokens.levels[1] as number));
      expect(byTokens.waitMs).toBeGreaterThan(0);
      expect(byTokens.waitMs).toBeLessThanOrEqual(12_000);
      // Both refuse (2 requests left after this, then none): the longer wait wins.
      const small = { ...tokens, units: 100 };
      expect((await store.admit([requests, small])).allowed).toBe(true);
      expect((await store.admit([requests, small])).allowed).toBe(true);
      const big = { ...tokens, units: 250 };
      const both = await store.admit([requests, big]);
      expect(both.allowed).toBe(false);
      const waits = [expectedWait(requests, both.levels[0] as number), expectedWait(big, both.levels[1] as number)];
      expect(waits.filter((w) => !(w > 0))).toEqual([]);
      expect(both.refusing).toBe(waits[0]! >= waits[1]! ? 0 : 1);
      expect(both.waitMs).toBe(Math.max(...waits));
    });

    it('a bucket refills continuously: after the advertised wait the request is admitted', async () => {
      // 2 per second: one unit every 500 ms.
      const call = bucket(`${tag()}:rpm`, 2, 1000, 1);
      expect((await store.admit([call])).allowed).toBe(true);
      expect((await store.admit([call])).allowed).toBe(true);
      const refused = await store.admit([call]);
      expect(refused.allowed).toBe(false);
      expect(refused.waitMs).toBe(expectedWait(call, refused.levels[0] as number));
      expect(refused.waitMs).toBeGreaterThan(0);
      expect(refused.waitMs).toBeLessThanOrEqual(500);
      expect(await admitAfterWaiting(store, [call], refused)).toBe(0);
    });

    it('an idle bucket refills up to its capacity and no further', async () => {
      // 2 per 200 ms: full again 200 ms after being emptied; then left idle three times that.
      const call = bucket(`${tag()}:rpm`, 2, 200, 2);
      expect((await store.admit([call])).allowed).toBe(true);
      await sleep(600);
      const three = await store.admit([{ ...call, units: 3 }]);
      expect(three.allowed).toBe(false);
      expect(three.levels[0]).toBe(2 * 200);
      expect(three.waitMs).toBe(100);
      expect((await store.admit([call])).allowed).toBe(true);
    });

    it('settle returns units, never above capacity', async () => {
      const call = bucket(`${tag()}:tpm`, 10, DAY, 4);
      const admitted = await store.admit([call]);
      expect(units(admitted.levels[0] as number, DAY)).toBe(6);
      const back = await store.settle([{ ...call, units: 3 }]);
      expect(units(back[0] as number, DAY)).toBe(9);
      const capped = await store.settle([{ ...call, units: 100 }]);
      expect(capped[0]).toBe(10 * DAY);
      // Full means full: the next admission sees the whole capacity, not more.
      const next = await store.admit([{ ...call, units: 10 }]);
      expect(next.allowed).toBe(true);
      expect(units(next.levels[0] as number, DAY)).toBe(0);
    });

    it('settle can take more than was reserved: the bucket goes into debt and refuses until refilled', async () => {
      // 2 per second; reserve 1, then settle to 4 used: level 2 − 4 = −2 units.
      const call = bucket(`${tag()}:tpm`, 2, 1000, 1);
      expect((await store.admit([call])).allowed).toBe(true);
      const debt = await store.settle([{ ...call, units: -3 }]);
      expect(debt[0] as number).toBeLessThan(0);
      expect(units(debt[0] as number, 1000)).toBe(-2);
      const refused = await store.admit([call]);
      expect(refused.allowed).toBe(false);
      expect(refused.waitMs).toBe(expectedWait(call, refused.levels[0] as number));
      // 3 units to refill at 2 per second: more than one unit's worth of waiting.
      expect(refused.waitMs).toBeGreaterThan(1000);
      expect(await admitAfterWaiting(store, [call], refused)).toBe(0);
    });

    it('settle on a bucket never admitted starts from a full bucket', async () => {
      const call = bucket(`${tag()}:tpm`, 50, DAY, 0);
      const levels = await store.settle([{ ...call, units: -20 }]);
      expect(units(levels[0] as number, DAY)).toBe(30);
      expect((await store.admit([{ ...call, units: 31 }])).allowed).toBe(false);
      expect((await store.admit([{ ...call, units: 30 }])).allowed).toBe(true);
    });

    it('keys sharing one {hash tag} are separate buckets; other tags are untouched', async () => {
      const t = tag();
      const other = tag();
      const rpm = bucket(`${t}:rpm`, 1, DAY, 1);
      const rpd = bucket(`${t}:rpd`, 3, DAY, 1);
      expect((await store.admit([rpm, rpd])).allowed).toBe(true);
      const after = await store.admit([rpd]);
      expect(after.allowed).toBe(true);
      expect(units(after.levels[0] as number, DAY)).toBe(1);
      expect((await store.admit([rpm])).allowed).toBe(false);
      const fresh = await store.admit([bucket(`${other}:rpm`, 1, DAY, 1)]);
      expect(fresh.allowed).toBe(true);
    });

    it('concurrent admissions never hand out more than the limit', async () => {
      const call = bucket(`${tag()}:rpd`, 20, DAY, 1);
      const outcomes = await Promise.all(Array.from({ length: 60 }, () => store.admit([call])));
      const admitted = outcomes.filter((o) => o.allowed);
      expect(admitted).toHaveLength(20);
      const remaining = admitted.map((o) => units(o.levels[0] as number, DAY)).sort((a, b) => a - b);
      expect(remaining).toEqual(Array.from({ length: 20 }, (_, i) => i));
    });

    it('one turn of mixed admissions: each all or nothing, in arrival order', async () => {
      const t = tag();
      const rpm = bucket(`${t}:rpm`, 10, MINUTE, 1);
      const tpm = (cost: number) => bucket(`${t}:tpm`, 100, MINUTE, cost);
      // Issued together (one event-loop turn): 60 fits, 50 does not (40 left), 30 fits, 20 does not.
      const outcomes = await Promise.all([60, 50, 30, 20].map((cost) => store.admit([rpm, tpm(cost)])));
      expect(outcomes.map((o) => o.allowed)).toEqual([true, false, true, false]);
      expect(outcomes.map((o) => units(o.levels[1] as number, MINUTE))).toEqual([40, 40, 10, 10]);
      // The refused ones took no request either.
      expect(outcomes.map((o) => units(o.levels[0] as number, MINUTE))).toEqual([9, 9, 8, 8]);
      expect(outcomes[1]?.refusing).toBe(1);
    });

    it('a settlement made in the same turn as admissions is applied before them', async () => {
      const call = bucket(`${tag()}:tpm`, 100, MINUTE, 80);
      expect((await store.admit([call])).allowed).toBe(true);
      // 20 left; the settlement returns 50 (reserved 80, used 30), so the 60 that follows fits.
      const [, admitted] = await Promise.all([store.settle([{ ...call, units: 50 }]), store.admit([{ ...call, units: 60 }])]);
      expect(admitted.allowed).toBe(true);
      expect(units(admitted.levels[0] as number, MINUTE)).toBe(10);
    });
  });
}

storeContract('memory', uniquePrefix('contract-memory'), () => createMemoryStore(), async () => {});

const redis = new Redis(inject('redisUrl'));
const redisPrefix = uniquePrefix('contract-redis');
storeContract('redis', redisPrefix, () => createRedisStore(redis), async () => {
  await deleteByPrefix(redis, redisPrefix);
  await redis.quit();
});

/** Run a marker command and wait until MONITOR has shown it: every command Redis ran before it has been shown too. */
async function monitored(monitor: Redis, probe: Redis, label: string): Promise<void> {
  const marker = `${redisPrefix}marker:${label}`;
  let shown = false;
  const watch = (_time: string, args: string[]): void => {
    if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) shown = true;
  };
  monitor.on('monitor', watch);
  try {
    await probe.echo(marker);
    await expect.poll(() => shown).toBe(true);
  } finally {
    monitor.off('monitor', watch);
  }
}

describe('redis store specifics', () => {
  it('batches one turn of calls on one hash tag into one script call', async () => {
    const probe = new Redis(inject('redisUrl'));
    const monitor = await probe.duplicate().monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase().startsWith('eval') && args.some((a) => a.includes(redisPrefix))) seen.push(args.join(' '));
    });
    try {
      const store = createRedisStore(probe);
      const call = { key: `${redisPrefix}{batch|gpt-4.1-nano}:rpm`, limit: 1000, windowMs: MINUTE, units: 1 };
      const other = { ...call, key: `${redisPrefix}{batch-other|gpt-4.1-nano}:rpm` };
      const outcomes = await Promise.all([...Array.from({ length: 10 }, () => store.admit([call])), store.admit([other])]);
      expect(outcomes.map((o) => o.allowed)).toEqual(Array(11).fill(true));
      // Ten admissions on one tag: one call; the other tag: its own call. MONITOR shows commands
      // in the order Redis ran them: once it shows a marker sent after them, it has shown them all.
      await monitored(monitor, probe, 'first');
      expect(seen).toHaveLength(2);
      // A later turn makes a new call.
      await store.admit([call]);
      await monitored(monitor, probe, 'second');
      expect(seen).toHaveLength(3);
    } finally {
      monitor.disconnect();
      await probe.quit();
    }
  });

  it('a deferrable settlement waits for the next admission on its tag and goes with it; alone, it is written within SETTLE_DELAY_MS; others go at once', async () => {
    const probe = new Redis(inject('redisUrl'));
    // The real client, with each script call counted as it is sent.
    defineLimiterCommands(probe);
    let sent = 0;
    const counted = new Proxy(probe, {
      get(target, property) {
        if (property === 'tollgateLimits') {
          return (...args: Parameters<Redis['tollgateLimits']>) => {
            sent++;
            return target.tollgateLimits(...args);
          };
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    try {
      // Settlements wait a minute for an admission here, so the ride-along below cannot race the
      // timer on a busy machine; `store` keeps the default delay for the lone settlement after it.
      const riding = createRedisStore(counted, { settleDelayMs: MINUTE });
      const store = createRedisStore(counted);
      const call = { key: `${redisPrefix}{ride|gpt-4.1-nano}:tpm`, limit: 1000, windowMs: DAY, units: 100 };
      // A day's window: the bucket refills by a unit in 86 s, so whole units stay exact here.
      expect(units((await riding.admit([call])).levels[0] as number, DAY)).toBe(900);
      expect(sent).toBe(1);
      // A settlement, then (the turn's flush has run and found it alone) an admission: one call,
      // the settlement applied first.
      const settled = riding.settle([{ ...call, units: 60 }], [], true);
      await turn();
      expect(sent).toBe(1);
      const admitted = await riding.admit([call]);
      expect(units((await settled)[0] as number, DAY)).toBe(960);
      expect(units(admitted.levels[0] as number, DAY)).toBe(860);
      expect(sent).toBe(2);
      // A settlement with no admission after it is written all the same.
      const start = Date.now();
      expect(units((await store.settle([{ ...call, units: 10 }], [], true))[0] as number, DAY)).toBe(870);
      expect(Date.now() - start).toBeGreaterThanOrEqual(SETTLE_DELAY_MS - 1);
      expect(units(Number(await probe.hget(call.key, 'l')), DAY)).toBe(870);
      expect(sent).toBe(3);
      // One a caller waits for (a read of the levels, a release) goes in its turn's own call.
      const read = store.settle([{ ...call, units: 0 }]);
      await turn();
      expect(sent).toBe(4);
      expect(units((await read)[0] as number, DAY)).toBe(870);
    } finally {
      await probe.quit();
    }
  });

  it('close() writes the settlements still waiting, and those made while closing; read() sees this instance\'s waiting settlements', async () => {
    const probe = new Redis(inject('redisUrl'));
    const own = probe.duplicate();
    try {
      const store = createRedisStore(own);
      const call = { key: `${redisPrefix}{drain|gpt-4.1-nano}:tpm`, limit: 1000, windowMs: DAY, units: 100 };
      const usage = `${redisPrefix}{drain}:usage`;
      await store.admit([call], [{ key: usage, field: 'tokens', units: 100 }]);
      void store.settle([], [{ key: usage, field: 'tokens', units: -40 }], true);
      expect(await store.read([usage])).toEqual([{ tokens: 60 }]);
      void store.settle([{ ...call, units: 30 }], [], true);
      const closed = store.close();
      // One made while closing (a request cut off by the shutdown) goes at once, ahead of the quit.
      await new Promise((resolve) => setImmediate(resolve));
      void store.settle([{ ...call, units: 5 }], [], true);
      await closed;
      await own.quit();
      expect(units(Number(await probe.hget(call.key, 'l')), DAY)).toBe(935);
      await probe.del(call.key, usage);
    } finally {
      own.disconnect();
      await probe.quit();
    }
  });

  it('a large turn (a call of over a kilobyte, numbers past 32 bits) admits exactly in order', async () => {
    const probe = new Redis(inject('redisUrl'));
    try {
      const store = createRedisStore(probe);
      // 100 requests of 3e9 units each (9 bytes per number): the call's arguments outgrow any
      // first buffer; a limit of 100e9 (capacity 6e15, below 2^53) admits the first 33 only.
      const call = { key: `${redisPrefix}{large|gpt-4.1-nano}:tpm`, limit: 100_000_000_000, windowMs: MINUTE, units: 3_000_000_000 };
      const outcomes = await Promise.all(Array.from({ length: 100 }, () => store.admit([call])));
      expect(outcomes.map((o) => o.allowed)).toEqual(Array.from({ length: 100 }, (_, i) => i < 33));
      const left = outcomes.map((o) => (o.levels[0] as number) / MINUTE);
      expect(left.slice(0, 33)).toEqual(Array.from({ length: 33 }, (_, i) => 100_000_000_000 - (i + 1) * 3_000_000_000));
      expect(left.slice(33)).toEqual(Array(left.length - 33).fill(1_000_000_000));
      expect(outcomes[33]?.refusing).toBe(0);
    } finally {
      await probe.quit();
    }
  });

  it('a bucket whose figures change within one turn is handled in a later call, not mixed up', async () => {
    const probe = new Redis(inject('redisUrl'));
    try {
      const store = createRedisStore(probe);
      const key = `${redisPrefix}{figures|gpt-4.1-nano}:rpd`;
      const [a, b] = await Promise.all([store.admit([{ key, limit: 5, windowMs: DAY, units: 1 }]), store.admit([{ key, limit: 10, windowMs: DAY, units: 1 }])]);
      expect(units(a.levels[0] as number, DAY)).toBe(4);
      // Under its own figures: capacity 10, level 4 × DAY carried over, minus 1.
      expect(units(b.levels[0] as number, DAY)).toBe(3);
    } finally {
      await probe.quit();
    }
  });

  it('stores a bucket as a hash {l, t} with a TTL that ends when the bucket would be full again', async () => {
    const probe = new Redis(inject('redisUrl'));
    try {
      const store = createRedisStore(probe);
      const key = `${redisPrefix}{ttl|gpt-4.1-nano}:rpm`;
      const outcome = await store.admit([{ key, limit: 3, windowMs: MINUTE, units: 1 }]);
      const [level, at] = await probe.hmget(key, 'l', 't');
      expect(Number(level)).toBe(outcome.levels[0]);
      expect(Number(level)).toBe(2 * MINUTE);
      // Stamped with Redis's own clock (TIME), in ms.
      const now = await redisNowMs(probe);
      expect(Number(at)).toBeLessThanOrEqual(now);
      expect(Number(at)).toBeGreaterThan(now - MINUTE);
      const ttl = await probe.pttl(key);
      // Full again after 20 s (one request at 3 per minute), plus the script's 1 s margin.
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(21_000);
      await probe.del(key);
    } finally {
      await probe.quit();
    }
  });
});
