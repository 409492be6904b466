import type { Cluster, Redis } from 'ioredis';
import type { Catalogue } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import type { Limiter } from '../limits/limiter.js';
import type { Upstream } from '../upstream/client.js';
import type { UpstreamIdentity } from '../upstream/headers.js';
import { createBatchQueue, type BatchQueue, type BatchUsage } from './queue.js';
import { createRedisBatchStore } from './redis-store.js';
import { createMemoryBatchStore } from './store.js';
import { upstreamBatchLookup } from './upstream.js';

export { BatchQueueLimitError } from './errors.js';
export {
  createBatchQueue,
  TERMINAL_STATUSES,
  type BatchCall,
  type BatchExchange,
  type BatchQueue,
  type BatchQueueOptions,
  type BatchUsage,
} from './queue.js';
export { readAnswer } from './upstream.js';

/** Largest upstream answer read whole for a watched batch call (file and batch objects are a few KB). */
export const BATCH_ANSWER_LIMIT_BYTES = 4 * 1024 * 1024;

export interface GatewayBatchQueueDeps {
  readonly config: Config;
  /** The shared Redis (`app.redis`); undefined: process memory. */
  readonly redis: Redis | Cluster | undefined;
  readonly limiter: Limiter;
  readonly catalogue: Catalogue;
  readonly upstream: Upstream;
  readonly identity: UpstreamIdentity;
  /** Periodic check interval (config `limits.batch_check_interval_ms`); 0: off. */
  readonly checkIntervalMs: number;
  readonly onError: (error: unknown, during: string) => void;
  readonly onRefused: (keyId: string, model: string) => void;
  readonly onUsage: (usage: BatchUsage) => void;
  /** Every key id, config file and admin API alike (revoked keys may still hold batches). */
  readonly listKeyIds: () => Promise<readonly string[]>;
}

/** The batch queue as the gateway runs it: Redis under the limiter's key prefix, or memory. */
export function createGatewayBatchQueue(deps: GatewayBatchQueueDeps): BatchQueue {
  const { config, catalogue } = deps;
  return createBatchQueue({
    store: deps.redis ? createRedisBatchStore(deps.redis, { keyPrefix: config.limits.key_prefix }) : createMemoryBatchStore(),
    limitOf: (caller) => deps.limiter.figures(caller).batch_queue_tokens,
    charsPerToken: config.estimation.chars_per_token,
    // Aliases share one queue (the catalogue name); other models keep their own name, as at OpenAI.
    resolveModel: (model) => catalogue.resolve(model)?.name ?? model,
    maxLineBytes: config.server.body_limit_bytes,
    onStoreError: config.limits.on_redis_error,
    checkIntervalMs: deps.checkIntervalMs,
    lookup: upstreamBatchLookup(deps.upstream, deps.identity),
    listKeyIds: deps.listKeyIds,
    // A create call still waiting for its answer is never taken for an orphan.
    holdTtlMs: config.upstream.headers_timeout_ms + config.upstream.body_timeout_ms + 60_000,
    onError: deps.onError,
    onRefused: deps.onRefused,
    onUsage: deps.onUsage,
  });
}
