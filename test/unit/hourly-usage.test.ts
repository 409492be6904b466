// Hourly usage buckets per key (issue 17): settled usage per UTC hour, written with the request's
// existing settlement call (capped keys) or the recorder's batch (uncapped keys), kept
// usage.hourly_retention_days after the hour, and read back by the console's hourly charts.
import { describe, expect, it } from 'vitest';
import type { Caller } from '../../src/auth/keys.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { callerFromPolicy } from '../../src/keys/caller.js';
import { createLimiter } from '../../src/limits/limiter.js';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import type { CounterCall, LimiterStore } from '../../src/limits/store.js';
import { createQuotas, usageKey } from '../../src/quota/charge.js';
import { ServiceUnavailableError } from '../../src/errors/errors.js';
import { createHistoryReader, createHourlyReader } from '../../src/quota/history.js';
import { createUsageRecorder } from '../../src/quota/recorder.js';
import { hourAt, windowClock } from '../../src/quota/windows.js';
import { costOf } from '../../src/usage/cost.js';
import type { Usage } from '../../src/usage/extract.js';

const catalogue = buildCatalogue(configFromObject({}));
const NANO = catalogue.resolve('gpt-4.1-nano');
const PREFIX = 't:hourly:';
const DAY_MS = 86_400_000;
const usage = (input: number, output: number, cached = 0): Usage => ({ inputTokens: input, cachedTokens: cached, outputTokens: output });
const cost = (u: Usage): number => costOf(NANO?.prices, u).total;

/** A memory store that counts its settle calls and the counters each carried. */
function counting(store: LimiterStore): LimiterStore & { settles: (readonly CounterCall[])[] } {
  const settles: (readonly CounterCall[])[] = [];
  return Object.assign(Object.create(store) as LimiterStore, {
    settles,
    settle: (buckets: Parameters<LimiterStore['settle']>[0], counters?: readonly CounterCall[], deferrable?: boolean, id?: string) => {
      settles.push(counters ?? []);
      return store.settle(buckets, counters, deferrable, id);
    },
  });
}

function rig(start: string, retentionDays: number) {
  let now = Date.parse(start);
  const clock = () => now;
  const store = counting(createMemoryStore(clock));
  const hourlyRetentionMs = retentionDays * DAY_MS;
  const recorder = createUsageRecorder({ store, keyPrefix: PREFIX, intervalMs: 60_000, hourlyRetentionMs });
  const quotas = createQuotas({ keyPrefix: PREFIX, recorder, clock, hourlyRetentionMs });
  const limiter = createLimiter({ store, catalogue, keyPrefix: PREFIX });
  const hourly = createHourlyReader({ store, recorder, keyPrefix: PREFIX, clock });
  const call = async (caller: Caller, actual: Usage) => {
    const reservation = await limiter.admit({ caller, model: 'gpt-4.1-nano', tokens: 2000, charge: quotas.chargeFor(caller, NANO, 1000, 1000) });
    await reservation.settle(actual);
  };
  return { store, recorder, hourly, call, set: (iso: string) => (now = Date.parse(iso)), advance: (ms: number) => (now += ms) };
}

const capped = callerFromPolicy('capped', { tier: 'tier-5', budget_usd: { daily: 10 } }, catalogue);
const uncapped = callerFromPolicy('open', { tier: 'tier-5' }, catalogue);

describe('hourly usage buckets', () => {
  it('names the UTC hour and when it ends; the window clock moves with the hour', () => {
    expect(hourAt(Date.parse('2026-11-26T13:59:59.999Z'))).toEqual({ id: 'h:2026-11-26T13', endsAt: Date.parse('2026-11-26T14:00:00Z') });
    let now = Date.parse('2026-03-31T23:59:59.999Z');
    const at = windowClock(() => now);
    expect(at().hour.id).toBe('h:2026-03-31T23');
    now += 1;
    expect([at().hour.id, at().windows[0]?.id]).toEqual(['h:2026-04-01T00', 'd:2026-04-01']);
    now += 3_600_000;
    expect([at().hour.id, at().windows[0]?.id]).toEqual(['h:2026-04-01T01', 'd:2026-04-01']);
    now -= 2 * 3_600_000;
    expect([at().hour.id, at().windows[0]?.id]).toEqual(['h:2026-03-31T23', 'd:2026-03-31']);
  });

  it('a capped key: each hour gets its settled tokens and cost, in the settlement call itself', async () => {
    const { store, hourly, call, set } = rig('2026-11-26T12:30:00Z', 8);
    const first = usage(900, 300, 200);
    await call(capped, first);
    // One settle call carried the daily/monthly/total counters and the hour's.
    expect(store.settles).toHaveLength(1);
    expect(new Set(store.settles[0]?.map((c) => c.key))).toContain(usageKey(PREFIX, 'capped', 'h:2026-11-26T12'));
    const hourCounters = store.settles[0]?.filter((c) => c.key === usageKey(PREFIX, 'capped', 'h:2026-11-26T12')) ?? [];
    expect(hourCounters.map((c) => c.field).sort()).toEqual(['cached_tokens', 'cost_nano', 'input_tokens', 'output_tokens', 'requests']);
    // The hash's expiry travels once (the end of the hour plus 8 days), not with every field.
    expect(hourCounters.filter((c) => c.ttlMs !== undefined).map((c) => c.ttlMs)).toEqual([30 * 60_000 + 8 * DAY_MS]);
    set('2026-11-26T13:05:00Z');
    const second = usage(100, 50);
    await call(capped, second);
    await call(capped, second);
    expect(store.settles).toHaveLength(3);
    const hours = await hourly('capped', 3);
    expect(hours.map((h) => h.hour)).toEqual(['2026-11-26T11:00:00.000Z', '2026-11-26T12:00:00.000Z', '2026-11-26T13:00:00.000Z']);
    expect(hours[0]).toMatchObject({ requests: 0, cost_nano: 0 });
    expect(hours[1]).toMatchObject({ requests: 1, input_tokens: 900, cached_tokens: 200, output_tokens: 300, cost_nano: cost(first) });
    expect(hours[2]).toMatchObject({ requests: 2, input_tokens: 200, cached_tokens: 0, output_tokens: 100, cost_nano: 2 * cost(second) });
    expect(Number.isInteger(hours[1]?.cost_nano)).toBe(true);
  });

  it('an uncapped key: summed in process per hour, written with the recorder’s batch', async () => {
    const { store, recorder, hourly, call, set } = rig('2026-11-26T12:59:00Z', 8);
    await call(uncapped, usage(1000, 10));
    set('2026-11-26T13:00:00Z');
    await call(uncapped, usage(2000, 20, 1024));
    // Nothing written per request (the limiter's own settles carry no counters): the recorder's one batch carries both hours.
    const withCounters = () => store.settles.filter((counters) => counters.length > 0);
    expect(withCounters()).toHaveLength(0);
    await recorder.flush();
    expect(withCounters()).toHaveLength(1);
    expect(new Set(withCounters()[0]?.map((c) => c.key))).toEqual(
      new Set(['d:2026-11-26', 'm:2026-11', 'total', 'h:2026-11-26T12', 'h:2026-11-26T13'].map((id) => usageKey(PREFIX, 'open', id))),
    );
    const hours = await hourly('open', 2);
    expect(hours.map((h) => [h.requests, h.input_tokens, h.cached_tokens, h.output_tokens, h.cost_nano])).toEqual([
      [1, 1000, 0, 10, cost(usage(1000, 10))],
      [1, 2000, 1024, 20, cost(usage(2000, 20, 1024))],
    ]);
  });

  it('kept for the retention after the hour, then gone', async () => {
    const { hourly, call, set, advance, recorder } = rig('2026-11-26T12:00:00Z', 2);
    await call(capped, usage(10, 10));
    await call(uncapped, usage(10, 10));
    // The gateway's recorder writes every second (usage.flush_interval_ms).
    await recorder.flush();
    set('2026-11-28T12:59:00Z');
    expect((await hourly('capped', 49))[0]).toMatchObject({ hour: '2026-11-26T12:00:00.000Z', requests: 1 });
    expect((await hourly('open', 49))[0]).toMatchObject({ hour: '2026-11-26T12:00:00.000Z', requests: 1 });
    advance(60_001);
    expect((await hourly('capped', 50))[0]).toMatchObject({ hour: '2026-11-26T12:00:00.000Z', requests: 0 });
    expect((await hourly('open', 50))[0]).toMatchObject({ hour: '2026-11-26T12:00:00.000Z', requests: 0 });
  });

  it('retention 0: no hourly buckets, and the settlement carries no extra counters', async () => {
    const { store, hourly, call, recorder } = rig('2026-11-26T12:00:00Z', 0);
    await call(capped, usage(10, 10));
    await call(uncapped, usage(10, 10));
    await recorder.flush();
    expect(store.settles.flat().some((c) => c.key.includes('|usage:h:'))).toBe(false);
    expect((await hourly('capped', 1))[0]?.requests).toBe(0);
    expect((await hourly('open', 1))[0]?.requests).toBe(0);
  });

  it('a store that does not answer: the history is unavailable (503), not a server error', async () => {
    const store = createMemoryStore(() => Date.now());
    const failing: LimiterStore = Object.assign(Object.create(store) as LimiterStore, { read: () => Promise.reject(new Error('connection refused')) });
    const recorder = createUsageRecorder({ store, keyPrefix: PREFIX, intervalMs: 60_000 });
    const options = { store: failing, recorder, keyPrefix: PREFIX };
    await expect(createHourlyReader(options)('any', 24)).rejects.toBeInstanceOf(ServiceUnavailableError);
    await expect(createHistoryReader(options)('any', 30)).rejects.toBeInstanceOf(ServiceUnavailableError);
  });
});
