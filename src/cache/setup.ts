import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RedisClient } from '../plugins/redis.js';
import { createPrefixSteering, type PrefixSteering } from '../steering/steering.js';
import { boundedCacheStore } from './bounded-store.js';
import { createMemoryCacheStore } from './memory-store.js';
import { createRedisCacheStore } from './redis-store.js';
import { createResponseCache, type ResponseCache } from './response-cache.js';

export interface Caching {
  readonly responseCache: ResponseCache;
  readonly steering: PrefixSteering;
}

/**
 * The response cache (Redis when there is one, process memory otherwise) and prefix steering.
 * Store failures are misses: counted in `tollgate_response_cache_errors_total` and logged when
 * they start and when they stop, not once per request.
 */
export function createCaching(config: Config, redis: RedisClient | undefined, metrics: Metrics, log: FastifyBaseLogger): Caching {
  const { response_cache: options } = config.caching;
  const store = redis
    ? boundedCacheStore(createRedisCacheStore(redis, config.limits.key_prefix), options.store_timeout_ms ?? config.limits.redis_timeout_ms)
    : createMemoryCacheStore({ maxBytes: options.memory_max_bytes });
  let failing = false;
  const recover = (): void => {
    if (!failing) return;
    failing = false;
    log.warn('response cache store is back');
  };
  const responseCache = createResponseCache({
    store: {
      get: (scope, hash) => {
        const found = store.get(scope, hash);
        if (failing && found instanceof Promise) void found.then(recover, () => undefined);
        return found;
      },
      set: (scope, hash, answer, ttlMs) => store.set(scope, hash, answer, ttlMs),
      purge: (scope) => store.purge(scope),
    },
    flightWaitMs: config.caching.response_cache.flight_wait_ms,
    onError: (during, error) => {
      metrics.cacheErrors.inc({ during });
      if (failing) return;
      failing = true;
      log.error({ err: error instanceof Error ? { message: error.message } : undefined, during }, 'response cache store failed: serving as misses');
    },
  });
  const steering = config.caching.prefix_steering;
  return {
    responseCache,
    steering: createPrefixSteering({
      enabled: steering.enabled,
      shardRpm: steering.shard_rpm,
      minPromptTokens: steering.min_prompt_tokens,
      headChars: steering.head_chars,
      instances: config.limits.instances,
    }),
  };
}
