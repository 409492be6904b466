import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis, Result } from 'ioredis';
import type { AdmitOutcome, BucketCall, LimiterStore } from './store.js';

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

function args(calls: readonly BucketCall[]): (string | number)[] {
  const out: (string | number)[] = calls.map((call) => call.key);
  for (const call of calls) out.push(call.limit, call.windowMs, call.units);
  return out;
}

/** The limiter in Redis: one script call per admission, shared by every gateway instance. */
export function createRedisStore(redis: Redis | Cluster): LimiterStore {
  defineLimiterCommands(redis);
  return {
    async admit(calls) {
      const reply = await redis.tollgateAdmit(calls.length, ...args(calls));
      const allowed = reply[0] === 1;
      return {
        allowed,
        refusing: allowed ? -1 : Number(reply[1]) - 1,
        waitMs: Number(reply[2]),
        levels: reply.slice(4).map(Number),
      } satisfies AdmitOutcome;
    },
    async settle(calls) {
      const reply = await redis.tollgateSettle(calls.length, ...args(calls));
      return reply.map(Number);
    },
    async close() {},
  };
}
