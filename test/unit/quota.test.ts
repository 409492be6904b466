// Budgets, token quotas and usage counters over the in-memory store on a manual clock (issue 5,
// point 3): UTC calendar windows and their rollover, a request settled into the window it was
// admitted in, the cost from usage/cost.ts, uncapped keys counted through the recorder, and what
// Redis failure means for budgets (limits.on_redis_error).
import { describe, expect, it } from 'vitest';
import type { Caller } from '../../src/auth/keys.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { QuotaExceededError } from '../../src/errors/errors.js';
import { callerFromPolicy } from '../../src/keys/caller.js';
import { createLimiter, type Limiter } from '../../src/limits/limiter.js';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import { createResilientStore, LimiterUnavailableError } from '../../src/limits/resilient-store.js';
import type { CounterCall, LimiterStore } from '../../src/limits/store.js';
import { createQuotas, FIELDS, usageKey } from '../../src/quota/charge.js';
import { createUsageRecorder } from '../../src/quota/recorder.js';
import { windowClock, windowsAt } from '../../src/quota/windows.js';
import type { Usage } from '../../src/usage/extract.js';

const catalogue = buildCatalogue(configFromObject({}));
const NANO = catalogue.resolve('gpt-4.1-nano');
const PREFIX = 't:quota:';
const usage = (input: number, output: number, cached = 0): Usage => ({ inputTokens: input, cachedTokens: cached, outputTokens: output });

describe('calendar windows (UTC)', () => {
  it('names the day, the month and total, and when each ends', () => {
    const [day, month, total] = windowsAt(Date.parse('2024-02-29T23:59:59.999Z'));
    expect(day).toEqual({ name: 'daily', id: 'd:2024-02-29', endsAt: Date.parse('2024-03-01T00:00:00Z') });
    expect(month).toEqual({ name: 'monthly', id: 'm:2024-02', endsAt: Date.parse('2024-03-01T00:00:00Z') });
    expect(total).toEqual({ name: 'total', id: 'total', endsAt: Infinity });
    const [newYearDay, newYearMonth] = windowsAt(Date.parse('2025-12-31T12:00:00+02:00'));
    expect(newYearDay.id).toBe('d:2025-12-31');
    expect(newYearMonth.endsAt).toBe(Date.parse('2026-01-01T00:00:00Z'));
  });

  it('a window clock moves to the next day at midnight UTC, and back when the clock does', () => {
    let now = Date.parse('2026-03-31T23:59:59.999Z');
    const at = windowClock(() => now);
    expect(at().windows.map((w) => w.id)).toEqual(['d:2026-03-31', 'm:2026-03', 'total']);
    now += 1;
    expect(at().windows.map((w) => w.id)).toEqual(['d:2026-04-01', 'm:2026-04', 'total']);
    now -= 2;
    expect(at().windows[0]?.id).toBe('d:2026-03-31');
  });
});

/** A limiter, quotas and recorder on one memory store and one manual clock. */
function rig(start: string) {
  let now = Date.parse(start);
  const clock = () => now;
  const store = createMemoryStore(clock);
  const recorder = createUsageRecorder({ store, keyPrefix: PREFIX, intervalMs: 0 });
  const quotas = createQuotas({ keyPrefix: PREFIX, recorder, clock });
  const limiter: Limiter = createLimiter({ store, catalogue, keyPrefix: PREFIX });
  // The in-memory limiter answers (and refuses) synchronously: as a promise here, either way.
  const admit = async (caller: Caller, input: number, output: number) =>
    limiter.admit({ caller, model: 'gpt-4.1-nano', tokens: input + output, charge: quotas.chargeFor(caller, NANO, input, output) });
  const read = async (caller: Caller, window: string) => (await store.read([usageKey(PREFIX, caller.id, window)]))[0] ?? {};
  return { store, admit, read, recorder, advance: (ms: number) => (now += ms), set: (iso: string) => (now = Date.parse(iso)) };
}

async function refusal(promise: Promise<unknown>): Promise<QuotaExceededError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(QuotaExceededError);
  return error as QuotaExceededError;
}

describe('budgets', () => {
  // 1000 input tokens at $0.10 and 1000 output at $0.40 per 1M: at most $0.0005 a request.
  const REQUEST = 1000 * 100 + 1000 * 400;

  it('a daily budget refuses at the day’s cap and renews at midnight UTC; the month keeps counting', async () => {
    const { admit, read, set } = rig('2026-05-31T23:00:00Z');
    const caller = callerFromPolicy('daily', { tier: 'tier-5', budget_usd: { daily: 0.0015, monthly: 0.0025 } }, catalogue);
    for (let i = 0; i < 3; i++) await (await admit(caller, 1000, 1000)).settle(usage(1000, 1000));
    const error = await refusal(admit(caller, 1000, 1000));
    expect(error.kind).toBe('budget');
    expect(error.status).toBe(429);
    expect(error.headers).toEqual({ 'x-should-retry': 'false' });
    expect(error.toBody().error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota', param: null });
    expect(error.message).toBe(
      'You exceeded your current quota, please check your plan and billing details. Key `daily` has reached its daily budget of $0.0015: $0.0015 spent or reserved, this request may cost up to $0.0005. It renews at 2026-06-01T00:00:00.000Z.',
    );
    set('2026-06-01T00:00:00Z');
    // A new day and a new month: both renewed.
    await (await admit(caller, 1000, 1000)).settle(usage(1000, 1000));
    expect(await read(caller, 'd:2026-05-31')).toMatchObject({ [FIELDS.spend]: 3 * REQUEST, [FIELDS.requests]: 3 });
    expect(await read(caller, 'd:2026-06-01')).toMatchObject({ [FIELDS.spend]: REQUEST, [FIELDS.requests]: 1 });
    expect(await read(caller, 'total')).toMatchObject({ [FIELDS.cost]: 4 * REQUEST, [FIELDS.requests]: 4 });
  });

  it('a monthly budget outlasts the day: refused on the next day of the same month', async () => {
    const { admit, set } = rig('2026-07-10T12:00:00Z');
    const caller = callerFromPolicy('monthly', { tier: 'tier-5', budget_usd: { monthly: 0.001 } }, catalogue);
    await (await admit(caller, 1000, 1000)).settle(usage(1000, 1000));
    await (await admit(caller, 1000, 1000)).settle(usage(1000, 1000));
    set('2026-07-11T12:00:00Z');
    expect((await refusal(admit(caller, 1000, 1000))).message).toContain('monthly budget of $0.001');
    set('2026-08-01T00:00:00Z');
    await admit(caller, 1000, 1000);
  });

  it('a request admitted before midnight and settled after it is settled into the day it was admitted in', async () => {
    const { admit, read, set } = rig('2026-09-30T23:59:59.900Z');
    const caller = callerFromPolicy('late', { tier: 'tier-5', budget_usd: { daily: 1 } }, catalogue);
    const reservation = await admit(caller, 1000, 1000);
    set('2026-10-01T00:00:00.100Z');
    await reservation.settle(usage(1000, 10));
    const real = 1000 * 100 + 10 * 400;
    expect(await read(caller, 'd:2026-09-30')).toMatchObject({ [FIELDS.spend]: real, [FIELDS.cost]: real, [FIELDS.output]: 10 });
    expect(await read(caller, 'd:2026-10-01')).toEqual({});
    expect(await read(caller, 'm:2026-09')).toMatchObject({ [FIELDS.spend]: real });
  });

  it('settles to the cost of the real usage (cached input at the cached price), exactly once', async () => {
    const { admit, read } = rig('2026-01-15T10:00:00Z');
    const caller = callerFromPolicy('cached', { tier: 'tier-5', budget_usd: { total: 1 } }, catalogue);
    const reservation = await admit(caller, 1000, 1000);
    expect(await read(caller, 'total')).toMatchObject({ [FIELDS.spend]: REQUEST, [FIELDS.tokens]: 2000 });
    await reservation.settle(usage(1200, 300, 800));
    await reservation.settle(usage(5000, 5000));
    // 400 uncached × 100 + 800 cached × 25 + 300 × 400 nano-dollars
    const real = 400 * 100 + 800 * 25 + 300 * 400;
    expect(await read(caller, 'total')).toEqual({
      [FIELDS.requests]: 1,
      [FIELDS.spend]: real,
      [FIELDS.cost]: real,
      [FIELDS.tokens]: 1500,
      [FIELDS.input]: 1200,
      [FIELDS.cached]: 800,
      [FIELDS.output]: 300,
    });
  });

  it('a usage above the reservation is charged in full: the budget then refuses until it renews', async () => {
    const { admit, read } = rig('2026-01-15T10:00:00Z');
    const caller = callerFromPolicy('over', { tier: 'tier-5', budget_usd: { daily: 0.001 } }, catalogue);
    const reservation = await admit(caller, 100, 100);
    await reservation.settle(usage(100, 3000));
    expect((await read(caller, 'd:2026-01-15'))[FIELDS.spend]).toBe(100 * 100 + 3000 * 400);
    await refusal(admit(caller, 1, 1));
  });

  it('a refused request takes nothing from the buckets or the other counters', async () => {
    const { admit, read } = rig('2026-01-15T10:00:00Z');
    const caller = callerFromPolicy('atomic', { tier: 'tier-1', budget_usd: { daily: 0.0001 }, token_quota: { monthly: 1_000_000 } }, catalogue);
    await refusal(admit(caller, 1000, 1000));
    expect(await read(caller, 'm:2026-01')).toEqual({});
    const admitted = await admit(caller, 100, 100);
    expect(admitted.headers['x-ratelimit-remaining-requests']).toBe('499');
  });
});

describe('token quotas', () => {
  it('count input + output (cached included) per UTC day and month; refuse with their own wording', async () => {
    const { admit, set } = rig('2026-02-27T08:00:00Z');
    const caller = callerFromPolicy('tokens', { tier: 'tier-5', token_quota: { daily: 3000, monthly: 5000 } }, catalogue);
    await (await admit(caller, 1000, 500)).settle(usage(1000, 500, 900));
    await (await admit(caller, 1000, 500)).settle(usage(1000, 500));
    const daily = await refusal(admit(caller, 1, 1));
    expect(daily.kind).toBe('token_quota');
    expect(daily.message).toContain('daily token quota of 3000: 3000 tokens used or reserved, this request may use up to 2.');
    set('2026-02-28T08:00:00Z');
    await (await admit(caller, 1000, 500)).settle(usage(1000, 500));
    expect((await refusal(admit(caller, 1000, 500))).message).toContain('monthly token quota of 5000');
    set('2026-03-01T00:00:00Z');
    await admit(caller, 1000, 500);
  });
});

describe('keys without budgets or quotas', () => {
  it('take nothing at admission and are counted at settlement through the recorder', async () => {
    const { admit, read } = rig('2026-01-15T10:00:00Z');
    const caller = callerFromPolicy('free-spender', { tier: 'tier-5' }, catalogue);
    expect(caller.quota).toBeUndefined();
    const reservation = await admit(caller, 1000, 1000);
    expect(await read(caller, 'total')).toEqual({});
    await reservation.settle(usage(10, 20));
    const cost = 10 * 100 + 20 * 400;
    expect(await read(caller, 'total')).toEqual({
      [FIELDS.requests]: 1,
      [FIELDS.input]: 10,
      [FIELDS.output]: 20,
      [FIELDS.cost]: cost,
      [FIELDS.spend]: cost,
      [FIELDS.tokens]: 30,
    });
  });

  it('the recorder batches per key, keeps what the store refused as it was and writes it again with its settlement id', async () => {
    let failing = true;
    const written: CounterCall[][] = [];
    const tried: string[] = [];
    const store = {
      async settle(_buckets: unknown, counters: readonly CounterCall[] = [], _deferrable?: boolean, id?: string) {
        tried.push(`${id}:${counters.map((c) => `${c.key}:${c.units}`).join(',')}`);
        if (failing) throw new Error('redis down');
        written.push([...counters]);
        return [];
      },
    } as unknown as LimiterStore;
    const errors: unknown[] = [];
    const recorder = createUsageRecorder({ store, keyPrefix: PREFIX, intervalMs: 60_000, onError: (e) => errors.push(e) });
    recorder.add([{ key: 'p:{a}|usage:total', field: 'requests', units: 1 }]);
    recorder.add([{ key: 'p:{a}|usage:total', field: 'requests', units: 1 }, { key: 'p:{b}|usage:total', field: 'requests', units: 1 }]);
    await recorder.flush();
    expect(errors).toHaveLength(2);
    failing = false;
    recorder.add([{ key: 'p:{a}|usage:total', field: 'requests', units: 1 }]);
    await recorder.close();
    // The failed batches again, unchanged and under the same ids (the store applies an id once,
    // so this is safe if the failed write ran after all), then the new one.
    expect(written.map((calls) => calls.map((c) => `${c.key}:${c.units}`)).sort()).toEqual([['p:{a}|usage:total:1'], ['p:{a}|usage:total:2'], ['p:{b}|usage:total:1']]);
    const [first, second, ...again] = tried;
    expect(again.slice(0, 2).sort()).toEqual([first, second].sort());
  });
});

describe('Redis failure and budgets (limits.on_redis_error)', () => {
  // What ioredis says when Redis is down (no connection, no offline queue): the call never left.
  const down = "Stream isn't writeable and enableOfflineQueue options is false";
  const broken = {
    admit: async () => {
      throw new Error(down);
    },
    settle: async () => {
      throw new Error(down);
    },
    read: async () => [],
    close: async () => {},
  } satisfies LimiterStore;

  function failing(mode: 'fail_closed' | 'fail_open', unwritten: CounterCall[][]) {
    const now = Date.parse('2026-01-15T10:00:00Z');
    const fallback = createMemoryStore(() => now);
    const store = createResilientStore({ primary: broken, fallback, mode, instances: 2, onSwitch: () => {}, onError: () => {}, onUnwrittenCounters: (c) => unwritten.push([...c]) });
    const recorder = createUsageRecorder({ store: fallback, keyPrefix: PREFIX, intervalMs: 0 });
    const quotas = createQuotas({ keyPrefix: PREFIX, recorder, clock: () => now });
    const limiter = createLimiter({ store, catalogue, keyPrefix: PREFIX });
    return (caller: Caller) => limiter.admit({ caller, model: 'gpt-4.1-nano', tokens: 2000, charge: quotas.chargeFor(caller, NANO, 1000, 1000) });
  }

  it('fail_closed: a budgeted request is refused with 503', async () => {
    const admit = failing('fail_closed', []);
    const caller = callerFromPolicy('closed', { tier: 'tier-5', budget_usd: { daily: 1 } }, catalogue);
    await expect(admit(caller)).rejects.toBeInstanceOf(LimiterUnavailableError);
  });

  it('fail_open: budgets are kept locally with the cap shared among the instances, and the spend is handed back to be written later', async () => {
    const unwritten: CounterCall[][] = [];
    const admit = failing('fail_open', unwritten);
    // $0.001 a day, 2 instances: $0.0005 here, one request of at most $0.0005.
    const caller = callerFromPolicy('open', { tier: 'tier-5', budget_usd: { daily: 0.001 } }, catalogue);
    const reservation = await admit(caller);
    await expect(admit(caller)).rejects.toBeInstanceOf(QuotaExceededError);
    await reservation.settle(usage(1000, 100));
    // What Redis must still learn: the reservation, then its correction to the real cost.
    const spend = unwritten.flat().filter((c) => c.field === FIELDS.spend && c.key.endsWith('|usage:total'));
    expect(spend.reduce((sum, c) => sum + c.units, 0)).toBe(1000 * 100 + 100 * 400);
  });
});
