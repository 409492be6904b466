// Issue 20, fault 3: a settlement's counters (spend, usage) are written exactly once, even when the
// connection drops after the script was written. The gateway's own wiring (app.ts): the Redis
// store behind the failure policy, counters it could not write handed to the usage recorder,
// which writes them again. A throwaway redis-server is frozen (SIGSTOP) while the settlement is in
// flight, and the connection is cut from the client's side, as a network drop would.
import { Redis } from 'ioredis';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createUsageRecorder } from '../../src/quota/recorder.js';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import { createRedisStore } from '../../src/limits/redis-store.js';
import { createResilientStore } from '../../src/limits/resilient-store.js';
import type { CounterCall } from '../../src/limits/store.js';
import { inject } from 'vitest';
import { settlementId } from '../../src/limits/store.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { uniquePrefix } from '../helpers/redis.js';

const USAGE = 'tollgate:{settle-once}|usage:d20261203';
const SPEND: CounterCall = { key: USAGE, field: 'spend_nano', units: 1_000 };

let server: RedisServer | undefined;
const clients: Redis[] = [];
afterEach(async () => {
  server?.kill('SIGCONT');
  for (const client of clients.splice(0)) client.disconnect();
  await server?.stop();
  server = undefined;
});

/** The gateway's client options (plugins/redis.ts). */
function gatewayClient(url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 250, enableOfflineQueue: false });
  client.on('error', () => undefined); // the drop is the point; the gateway logs these
  clients.push(client);
  return client;
}

/** What the client has written and not had answered yet (ioredis keeps it to match the replies). */
const unanswered = (client: Redis): number => (client as unknown as { commandQueue: { length: number } }).commandQueue.length;

describe('a settlement whose connection drops after it was written', () => {
  it('is counted once, whether Redis ran it or not', async () => {
    server = await startRedisServer();
    const redis = gatewayClient(server.url);
    await new Promise((resolve) => redis.once('ready', resolve));
    const primary = createRedisStore(redis);
    const recorder = createUsageRecorder({ store: primary, keyPrefix: 'tollgate:', intervalMs: 60_000 });
    const store = createResilientStore({
      primary,
      fallback: createMemoryStore(),
      mode: 'fail_open',
      instances: 1,
      probeAfterMs: 0,
      onSwitch: () => undefined,
      onError: () => undefined,
      onUnwrittenCounters: (counters, id) => recorder.add(counters, id),
    });

    server.kill('SIGSTOP');
    const settled = Promise.resolve(store.settle([], [SPEND]));
    await expect.poll(() => unanswered(redis)).toBe(1);
    // The network drops: the script sits in Redis's socket buffer and runs once Redis wakes.
    (redis as unknown as { stream: Socket }).stream.destroy();
    await settled;
    server.kill('SIGCONT');
    const observer = gatewayClient(server.url);
    await expect.poll(() => [redis.status, observer.status]).toEqual(['ready', 'ready']);
    // The recorder writes what was handed back at its flushes until Redis takes it; whichever of
    // the first write, the client's own resend and the recorder's lands, the spend counts once.
    await expect
      .poll(async () => {
        await recorder.flush();
        return observer.hget(USAGE, 'spend_nano');
      })
      .toBe('1000');
    await recorder.flush();
    await primary.close();
    expect(await observer.hget(USAGE, 'spend_nano')).toBe('1000');
    expect(await observer.keys('tollgate:{settle-once}:settled:*')).toHaveLength(1);
  });
});

describe('a settlement id', () => {
  it('is applied once by Redis: the same settlement written twice counts once, another id counts again', async () => {
    const redis = gatewayClient(inject('redisUrl'));
    await new Promise((resolve) => redis.once('ready', resolve));
    const store = createRedisStore(redis);
    const usage = `${uniquePrefix('settle-id')}{k}|usage:total`;
    const spend = (units: number): CounterCall[] => [{ key: usage, field: 'spend_nano', units, ttlMs: 60_000 }];
    const id = settlementId();
    await store.settle([], spend(700), false, id);
    await store.settle([], spend(700), false, id);
    await store.settle([], spend(5), false, settlementId());
    expect(await redis.hget(usage, 'spend_nano')).toBe('705');
    expect(await redis.pttl(usage)).toBeGreaterThan(0);
    await redis.del(usage);
  });
});
