/**
 * Admissions per second of the limiter itself (no HTTP): the atomic reserve of one request
 * (RPM + RPD + TPM buckets in one Lua call) against a local Redis, and against process memory,
 * from C concurrent callers spread over K keys. Each caller admits, then settles without waiting
 * (as the gateway does once a request is answered) and admits again.
 */
import { Redis } from 'ioredis';
import { buildCatalogue } from '../src/config/catalogue.js';
import { configFromObject } from '../src/config/load.js';
import { createLimiter } from '../src/limits/limiter.js';
import { createMemoryStore } from '../src/limits/memory-store.js';
import { createRedisStore } from '../src/limits/redis-store.js';
import type { LimiterStore } from '../src/limits/store.js';

export interface AdmissionResult {
  store: string;
  admissionsPerSecond: number;
  settlesPerSecond: number;
  refused: number;
}

async function measure(name: string, store: LimiterStore, seconds: number, concurrency: number, keys: number): Promise<AdmissionResult> {
  const catalogue = buildCatalogue(configFromObject({}));
  const limiter = createLimiter({ store, catalogue, keyPrefix: `bench:${Date.now()}:` });
  // Limits high enough that the bench measures the store, not refusals.
  const callers = Array.from({ length: keys }, (_, i) => ({
    id: `bench-${i}`,
    tier: 'tier-5' as const,
    limits: { rpm: 1_000_000_000, rpd: 1_000_000_000, tpm: 100_000_000_000 },
    maxWaitMs: undefined,
  }));
  let admitted = 0;
  let settled = 0;
  let refused = 0;
  const end = Date.now() + seconds * 1000;
  // Settlements still unwritten. A count, not an array of promises: a run admits millions, and
  // Promise.all over millions of promises takes minutes of garbage collection.
  let pending = 0;
  let drained: (() => void) | undefined;
  const written = (): void => {
    if (--pending === 0) drained?.();
  };
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      let i = worker;
      while (Date.now() < end) {
        const caller = callers[i++ % keys]!;
        try {
          const reservation = await limiter.admit({ caller, model: 'gpt-4.1-nano', tokens: 300 });
          admitted++;
          // As in the gateway, nothing waits for the settlement (the store may send it with its
          // next call); it is counted once written.
          pending++;
          Promise.resolve(reservation.settle({ inputTokens: 120, cachedTokens: 0, outputTokens: 0 })).then(() => {
            settled++;
            written();
          }, written);
        } catch {
          refused++;
        }
      }
    }),
  );
  if (pending > 0) await new Promise<void>((resolve) => (drained = resolve));
  return { store: name, admissionsPerSecond: admitted / seconds, settlesPerSecond: settled / seconds, refused };
}

export async function benchAdmissions(redisUrl: string, seconds = 3, concurrency = 64, keys = 100): Promise<AdmissionResult[]> {
  const redis = new Redis(redisUrl, { enableAutoPipelining: true });
  try {
    const results = [await measure('redis', createRedisStore(redis), seconds, concurrency, keys)];
    const memory = createMemoryStore();
    results.push(await measure('memory', memory, seconds, concurrency, keys));
    await memory.close();
    return results;
  } finally {
    redis.disconnect();
  }
}
