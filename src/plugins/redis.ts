import fp from 'fastify-plugin';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { LIMITER_COMMAND } from '../limits/redis-store.js';

/** A single Redis or a Redis Cluster: every script tollgate runs keeps its keys on one slot. */
export type RedisClient = Redis | Cluster;

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis client; undefined without REDIS_URL or cluster nodes (in-memory mode). */
    redis: RedisClient | undefined;
  }
}

export interface RedisPluginOptions {
  readonly url: string | undefined;
  /** Redis Cluster seed nodes (`host:port` or `redis://host:port`); wins over `url` when given. */
  readonly clusterNodes?: readonly string[] | undefined;
  /** Bound on every command, so no request waits on an unreachable Redis. */
  readonly commandTimeoutMs?: number;
  /** How long the start waits for the first connection. */
  readonly connectWaitMs?: number;
}

/** Owns the Redis client: created here, decorated as `app.redis`, closed on shutdown. */
export const redisPlugin = fp<RedisPluginOptions>(
  async (app, options) => {
    const clusterNodes = options.clusterNodes ?? [];
    if (!options.url && clusterNodes.length === 0) {
      app.decorate('redis', undefined);
      return;
    }
    const common: RedisOptions = {
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 500,
      // While disconnected, fail at once (the limiter's failure policy decides) instead of queueing.
      enableOfflineQueue: false,
    };
    // Auto-pipelining for every command but the limiter's script: the limiter already sends one
    // call per key and model per event-loop turn (limits/redis-store.ts), a pipeline around it
    // would only cost.
    const pipelining = { enableAutoPipelining: true, autoPipeliningIgnoredCommands: [LIMITER_COMMAND] };
    const redis: RedisClient =
      clusterNodes.length > 0
        ? new Cluster(clusterNodes.map(seedNode), { ...pipelining, enableOfflineQueue: false, redisOptions: common })
        : new Redis(options.url as string, { ...common, ...pipelining, lazyConnect: false });
    redis.on('error', (err: Error) => app.log.warn({ err: { message: err.message } }, 'redis connection error'));
    app.decorate<RedisClient>('redis', redis);
    // Commands fail fast while disconnected (no offline queue), so give the first connection a
    // moment before serving; an unreachable Redis does not stop the start (/readyz tells).
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, options.connectWaitMs ?? 2000);
      redis.once('ready', done);
    });
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  },
  { name: 'tollgate-redis' },
);

function seedNode(node: string): { host: string; port: number } {
  const url = new URL(node.includes('://') ? node : `redis://${node}`);
  return { host: url.hostname, port: Number(url.port || 6379) };
}
