// Reading the limiter's buckets straight from Redis, for tests that check what was charged.
// A bucket is a hash {l: level in unit-milliseconds (units × window), t: Redis ms of the last
// update} under `<prefix>{<key id>}|<model>:<rpm|rpd|tpm>` (src/limits/limiter.ts).
import type { Redis } from 'ioredis';

export const WINDOW_MS = { rpm: 60_000, rpd: 86_400_000, tpm: 60_000 } as const;
export type BucketKind = keyof typeof WINDOW_MS;

export function bucketKey(prefix: string, keyId: string, kind: BucketKind, model = 'gpt-4.1-nano'): string {
  return `${prefix}{${keyId}}|${model}:${kind}`;
}

/** Redis's own clock in whole ms, as the Lua scripts compute it. */
export async function redisNowMs(redis: Redis): Promise<number> {
  const [seconds, micros] = (await redis.time()) as [string | number, string | number];
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

export interface BucketState {
  /** Level in unit-milliseconds; a missing key is a full bucket. */
  readonly level: number;
  /** Redis ms of the stored level (now for a missing key). */
  readonly at: number;
  readonly exists: boolean;
}

export async function readBucket(redis: Redis, key: string, limit: number, windowMs: number): Promise<BucketState> {
  const [level, at] = await redis.hmget(key, 'l', 't');
  if (level === null || at === null) return { level: limit * windowMs, at: await redisNowMs(redis), exists: false };
  return { level: Number(level), at: Number(at), exists: true };
}

/**
 * Every whole number of units C that a bucket, full at Redis time `since` and never full again
 * since, can have had taken to hold `state` now: level = capacity − C·window + k·limit for some
 * whole refill k (ms) with 0 ≤ k ≤ at − since. The units really charged are always among them;
 * they are the only one when the first charge came less than window/limit ms (the refill time of
 * one unit) after `since` and the last one less than that after the first. A busy machine can
 * delay either, so tests check that the expected charge is among them, not that it is the only one.
 */
export function consumptions(state: BucketState, limit: number, windowMs: number, since: number, maxUnits: number): number[] {
  const capacity = limit * windowMs;
  const found: number[] = [];
  for (let units = 0; units <= maxUnits; units++) {
    const refill = state.level - (capacity - units * windowMs);
    if (refill < 0 || refill % limit !== 0) continue;
    if (refill / limit <= Math.max(0, state.at - since)) found.push(units);
  }
  return found;
}

/** Whole units left (what x-ratelimit-remaining-* would say). */
export function remainingUnits(state: BucketState, windowMs: number): number {
  return Math.floor(state.level / windowMs);
}
