import { ServiceUnavailableError } from '../errors/errors.js';
import type { LimiterStore } from '../limits/store.js';
import { nanoToUsd } from '../usage/cost.js';
import { FIELDS, usageKey } from './fields.js';
import type { UsageRecorder } from './recorder.js';

/** One UTC day of a key's settled usage (the console's charts). */
export interface DayUsage {
  /** `2026-11-26` */
  readonly day: string;
  readonly requests: number;
  readonly input_tokens: number;
  readonly cached_tokens: number;
  readonly output_tokens: number;
  readonly cost_usd: number;
  /** The same cost in integer nano-dollars (exact sums). */
  readonly cost_nano: number;
}

/** One UTC hour of a key's settled usage (the console's hourly charts). */
export interface HourUsage extends Omit<DayUsage, 'day'> {
  /** The hour's start: `2026-11-26T13:00:00.000Z` */
  readonly hour: string;
}

export interface HistoryOptions {
  readonly store: LimiterStore;
  readonly recorder: UsageRecorder;
  readonly keyPrefix: string;
  readonly clock?: () => number;
}

/** A key's last `days` UTC days, oldest first (today last), read from the daily usage hashes. */
export type HistoryReader = (keyId: string, days: number) => Promise<DayUsage[]>;
/** A key's last `hours` UTC hours, oldest first (the current hour last), read from the hourly usage hashes. */
export type HourlyReader = (keyId: string, hours: number) => Promise<HourUsage[]>;

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** The usage hashes live in Redis: when it does not answer, the history is unavailable (503), not a server error. */
function unavailable(error: unknown): never {
  throw new ServiceUnavailableError('Usage history cannot be read: its store is unavailable. Please try again shortly.', { cause: error });
}

function fieldsOf(h: Readonly<Record<string, number>>): Omit<DayUsage, 'day'> {
  const cost = h[FIELDS.cost] ?? 0;
  return {
    requests: h[FIELDS.requests] ?? 0,
    input_tokens: h[FIELDS.input] ?? 0,
    cached_tokens: h[FIELDS.cached] ?? 0,
    output_tokens: h[FIELDS.output] ?? 0,
    cost_usd: nanoToUsd(cost),
    cost_nano: cost,
  };
}

/**
 * Reads the hourly usage hashes the settlement writes (usage.hourly_retention_days), in one store
 * call. Read only by the console, never on the request path.
 */
export function createHourlyReader(options: HistoryOptions): HourlyReader {
  const clock = options.clock ?? Date.now;
  return async (keyId, hours) => {
    await options.recorder.flush();
    const current = Math.floor(clock() / HOUR_MS) * HOUR_MS;
    const starts: number[] = [];
    for (let i = hours - 1; i >= 0; i--) starts.push(current - i * HOUR_MS);
    const ids = starts.map((start) => `h:${new Date(start).toISOString().slice(0, 13)}`);
    const hashes = await options.store.read(ids.map((id) => usageKey(options.keyPrefix, keyId, id))).catch(unavailable);
    return starts.map((start, i) => ({ hour: new Date(start).toISOString(), ...fieldsOf(hashes[i] ?? {}) }));
  };
}

/**
 * Reads the daily usage hashes the quota counters already keep (35 days): no extra write per
 * request. Read only by the console and the admin API, never on the request path.
 */
export function createHistoryReader(options: HistoryOptions): HistoryReader {
  const clock = options.clock ?? Date.now;
  return async (keyId, days) => {
    await options.recorder.flush();
    const today = Math.floor(clock() / DAY_MS) * DAY_MS;
    const dayIds: string[] = [];
    for (let i = days - 1; i >= 0; i--) dayIds.push(new Date(today - i * DAY_MS).toISOString().slice(0, 10));
    const hashes = await options.store.read(dayIds.map((day) => usageKey(options.keyPrefix, keyId, `d:${day}`))).catch(unavailable);
    return dayIds.map((day, i) => ({ day, ...fieldsOf(hashes[i] ?? {}) }));
  };
}
