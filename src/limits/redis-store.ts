import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis, Result } from 'ioredis';
import type { AdmitOutcome, BucketCall, CounterCall, LimiterStore } from './store.js';

const luaPath = (name: string): string => fileURLToPath(new URL(`./lua/${name}`, import.meta.url));

function loadLua(name: string): string {
  // The build copies src/limits/lua/ to dist/limits/lua/, so this resolves from src and dist alike.
  return readFileSync(luaPath(name), 'utf8');
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    tollgateAdmit(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number[], Context>;
    tollgateSettle(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number[], Context>;
  }
}

/** Register the limiter's scripts on a client (ioredis defineCommand: EVALSHA with EVAL fallback). */
export function defineLimiterCommands(redis: Redis | Cluster): void {
  if (typeof (redis as Partial<Redis>).tollgateAdmit === 'function') return;
  redis.defineCommand('tollgateAdmit', { lua: loadLua('admit.lua') });
  redis.defineCommand('tollgateSettle', { lua: loadLua('settle.lua') });
}

function args(calls: readonly BucketCall[], counters: readonly CounterCall[], admit: boolean): (string | number)[] {
  const out: (string | number)[] = calls.map((call) => call.key);
  for (const counter of counters) out.push(counter.key);
  for (const call of calls) out.push(call.limit, call.windowMs, call.units);
  for (const c of counters) {
    if (admit) out.push(c.field, c.cap ?? -1, c.units, c.ttlMs ?? 0);
    else out.push(c.field, c.units, c.ttlMs ?? 0);
  }
  // settle.lua reads the number of counters from the last value (see the script).
  if (!admit && counters.length > 0) out.push(counters.length);
  return out;
}

const NONE: readonly CounterCall[] = [];

/** The limiter in Redis: one script call per admission, shared by every gateway instance. */
export function createRedisStore(redis: Redis | Cluster): LimiterStore {
  defineLimiterCommands(redis);
  return {
    async admit(calls, counters = NONE) {
      const reply = await redis.tollgateAdmit(calls.length + counters.length, ...args(calls, counters, true));
      const allowed = reply[0] === 1;
      const outcome: AdmitOutcome = {
        allowed,
        refusing: allowed ? -1 : Number(reply[1]) - 1,
        waitMs: Number(reply[2]),
        levels: reply.slice(4, 4 + calls.length).map(Number),
      };
      return counters.length === 0 ? outcome : { ...outcome, values: reply.slice(4 + calls.length).map(Number) };
    },
    async settle(calls, counters = NONE) {
      const reply = await redis.tollgateSettle(calls.length + counters.length, ...args(calls, counters, false));
      return reply.map(Number);
    },
    async read(keys) {
      const hashes = await Promise.all(keys.map((key) => redis.hgetall(key)));
      return hashes.map((fields) => Object.fromEntries(Object.entries(fields).map(([field, value]) => [field, Number(value)])));
    },
    async close() {},
  };
}
