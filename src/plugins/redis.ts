import fp from 'fastify-plugin';
import { Redis } from 'ioredis';

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis client; undefined when REDIS_URL is unset (single-instance, in-memory mode). */
    redis: Redis | undefined;
  }
}

export interface RedisPluginOptions {
  readonly url: string | undefined;
  /** Bound on every command, so no request waits on an unreachable Redis. */
  readonly commandTimeoutMs?: number;
  /** How long the start waits for the first connection. */
  readonly connectWaitMs?: number;
}

/** Owns the Redis client: created here, decorated as `app.redis`, closed on shutdown. */
export const redisPlugin = fp<RedisPluginOptions>(
  async (app, options) => {
    if (!options.url) {
      app.decorate('redis', undefined);
      return;
    }
    const redis = new Redis(options.url, {
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 500,
      // While disconnected, fail at once (the limiter's failure policy decides) instead of queueing.
      enableOfflineQueue: false,
      lazyConnect: false,
    });
    redis.on('error', (err: Error) => app.log.warn({ err: { message: err.message } }, 'redis connection error'));
    app.decorate('redis', redis);
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
