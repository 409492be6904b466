// Issue 20, fault 2: when the organisation ceiling admitted a request and the key's own admission
// then fails with a store error, the ceiling's units are given back. Before, only a refusal gave
// them back, and each failure leaked one request (and its tokens) of the organisation's budget.
// Real Redis: the key's RPM bucket is a string, so the script fails with WRONGTYPE.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Caller } from '../../src/auth/keys.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { createLimiter } from '../../src/limits/limiter.js';
import { createRedisStore } from '../../src/limits/redis-store.js';
import type { LimiterStore } from '../../src/limits/store.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const MODEL = 'gpt-4.1-nano';
const prefix = uniquePrefix('org-release');
let redis: Redis;
let store: LimiterStore;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  store = createRedisStore(redis);
});
afterAll(async () => {
  await store?.close();
  await deleteByPrefix(redis, prefix);
  redis?.disconnect();
});

const caller = (id: string): Caller => ({ id, tier: 'tier-5', limits: undefined, maxWaitMs: undefined });

describe('the organisation ceiling when the key’s own admission fails', () => {
  it('gives the ceiling’s units back, so other keys keep the whole organisation limit', async () => {
    const limiter = createLimiter({ store, catalogue: buildCatalogue(configFromObject({})), keyPrefix: prefix, organization: { tier: 'free', name: 'acme' } });
    // The free tier's ceiling: 3 RPM for the sum of all keys.
    await redis.set(`${prefix}{broken}|${MODEL}:rpm`, 'not a bucket');
    const failures: unknown[] = [];
    for (let i = 0; i < 3; i++) failures.push(await Promise.resolve(limiter.admit({ caller: caller('broken'), model: MODEL, tokens: 10 })).catch((e: unknown) => e));
    expect(failures.map((e) => (e instanceof Error ? e.message : e))).toEqual(Array(3).fill(expect.stringMatching(/^WRONGTYPE/)));
    const admitted = [];
    for (let i = 0; i < 3; i++) admitted.push((await limiter.admit({ caller: caller(`healthy-${i}`), model: MODEL, tokens: 10 })).headers['x-ratelimit-remaining-requests']);
    // The key's own headers (tier-5: 30,000 RPM): each healthy key was admitted once.
    expect(admitted).toEqual(['29999', '29999', '29999']);
  });
});
