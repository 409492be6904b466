import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis, Result } from 'ioredis';
import { KeyStoreUnavailableError } from '../errors/errors.js';
import { decodeKey, encodeKey, type KeyBackend } from './backend.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    tollgateKeyPut(numKeys: number, ...keysAndArgs: string[]): Result<number, Context>;
  }
}

export interface RedisKeyBackendOptions {
  /** The shared client; the subscription gets its own connection (a duplicate). */
  readonly redis: Redis | Cluster;
  readonly keyPrefix: string;
  /** Called when the subscription connection fails or comes back. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Run-time keys in Redis, shared by every instance: one hash of records by id and one index from
 * SHA-256 to id, both under one hash tag (so the compare-and-set script runs on Redis Cluster), and
 * a pub/sub channel on which every change is announced.
 */
export function createRedisKeyBackend(options: RedisKeyBackendOptions): KeyBackend {
  const { redis, keyPrefix } = options;
  if (typeof (redis as Partial<Redis>).tollgateKeyPut !== 'function') {
    // The build copies src/keys/lua/ to dist/keys/lua/.
    const lua = readFileSync(fileURLToPath(new URL('./lua/key-put.lua', import.meta.url)), 'utf8');
    redis.defineCommand('tollgateKeyPut', { lua });
  }
  const records = `${keyPrefix}{keys}:records`;
  const digests = `${keyPrefix}{keys}:digests`;
  const channel = `${keyPrefix}keys:changed`;
  let subscriber: Redis | Cluster | undefined;
  // Redis not answering is the key store being unavailable (OpenAI's 503, "try again"), not a
  // server error: the admin API and authentication answer it so. The cause goes to the log.
  const unavailable = (error: unknown): never => {
    options.onError?.(error);
    throw new KeyStoreUnavailableError();
  };

  return {
    async get(id) {
      const text = await redis.hget(records, id).catch(unavailable);
      return text === null ? undefined : decodeKey(text);
    },
    async byDigest(hex) {
      const id = await redis.hget(digests, hex).catch(unavailable);
      if (id === null) return undefined;
      const text = await redis.hget(records, id).catch(unavailable);
      return text === null ? undefined : decodeKey(text);
    },
    async list() {
      const all = await redis.hvals(records).catch(unavailable);
      return all.map(decodeKey);
    },
    async put(expected, next, liveDigest) {
      const oldDigest = expected && !expected.revoked_at ? expected.sha256 : '';
      const written = await redis
        .tollgateKeyPut(2, records, digests, next.id, expected ? encodeKey(expected) : '', encodeKey(next), oldDigest, liveDigest ?? '')
        .catch(unavailable);
      return written === 1;
    },
    async publish(id) {
      await redis.publish(channel, id);
    },
    async subscribe(listener) {
      const sub = redis.duplicate();
      subscriber = sub;
      let connectedBefore = false;
      sub.on('error', (err: unknown) => options.onError?.(err));
      sub.on('message', (_channel: string, id: string) => listener(id));
      // The client has no offline queue: subscribe on every (re)connection. Messages sent while
      // the connection was down are lost, so after a reconnect nothing cached is trusted.
      const subscribed = new Promise<void>((resolve) => {
        sub.on('ready', () => {
          if (connectedBefore) listener(undefined);
          connectedBefore = true;
          sub.subscribe(channel).then(
            () => resolve(),
            (err: unknown) => options.onError?.(err),
          );
        });
      });
      // Start-up waits for the subscription, briefly: an unreachable Redis must not stop the start.
      await Promise.race([subscribed, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    },
    async close() {
      await subscriber?.quit().catch(() => subscriber?.disconnect());
    },
  };
}
