// One contract for the batch queue's storage (issue 3, point 6): the in-memory store and the
// Redis store (lua/batch-reserve.lua, batch-commit.lua, batch-release.lua against a real
// redis-server) must behave alike. Above all: reservations are all or nothing, and a release
// gives tokens back exactly once, however many callers race for it.
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedisBatchStore } from '../../src/batch/redis-store.js';
import { createMemoryBatchStore, HOLD_PREFIX, type BatchStore } from '../../src/batch/store.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const NANO = 'gpt-4.1-nano';
const MINI = 'gpt-4.1-mini';

interface Subject {
  readonly store: BatchStore;
  teardown(): Promise<void>;
}

function storeContract(name: string, setup: () => Promise<Subject>): void {
  describe(`batch store contract: ${name}`, () => {
    let store: BatchStore;
    let subject: Subject | undefined;
    let n = 0;
    const key = () => `key-${++n}`;
    const hold = () => `${HOLD_PREFIX}${++n}`;
    const items = (tokens: number, limit: number, model = NANO) => [{ model, tokens, limit }];

    beforeAll(async () => {
      subject = await setup();
      store = subject.store;
    }, 60_000);
    afterAll(async () => {
      await store?.close();
      await subject?.teardown();
    });

    it('reserves up to the limit exactly, then refuses without changing anything', async () => {
      const k = key();
      expect(await store.reserve(k, hold(), items(600, 1000), 1)).toEqual({ ok: true });
      expect(await store.reserve(k, hold(), items(400, 1000), 2)).toEqual({ ok: true });
      expect(await store.reserve(k, hold(), items(1, 1000), 3)).toEqual({ ok: false, model: NANO, limit: 1000, enqueued: 1000 });
      expect(await store.enqueued(k)).toEqual(new Map([[NANO, 1000]]));
      expect((await store.held(k)).length).toBe(2);
    });

    it('a batch larger than the whole limit is refused even on an empty queue', async () => {
      const k = key();
      expect(await store.reserve(k, hold(), items(1001, 1000), 1)).toEqual({ ok: false, model: NANO, limit: 1000, enqueued: 0 });
      expect(await store.enqueued(k)).toEqual(new Map());
    });

    it('keeps one queue per model, and reserves several models all or nothing', async () => {
      const k = key();
      expect(await store.reserve(k, hold(), items(900, 1000, MINI), 1)).toEqual({ ok: true });
      const both = [
        { model: NANO, tokens: 500, limit: 1000 },
        { model: MINI, tokens: 200, limit: 1000 },
      ];
      expect(await store.reserve(k, hold(), both, 2)).toEqual({ ok: false, model: MINI, limit: 1000, enqueued: 900 });
      expect(await store.enqueued(k)).toEqual(new Map([[MINI, 900]]));
      expect(await store.reserve(k, hold(), items(1000, 1000), 3)).toEqual({ ok: true });
      expect(await store.enqueued(k)).toEqual(new Map([[MINI, 900], [NANO, 1000]]));
    });

    it('keeps keys apart', async () => {
      const a = key();
      const b = key();
      expect(await store.reserve(a, hold(), items(1000, 1000), 1)).toEqual({ ok: true });
      expect(await store.reserve(b, hold(), items(1000, 1000), 1)).toEqual({ ok: true });
    });

    it('commits a hold under the batch id; releases exactly once, even when many race for it', async () => {
      const k = key();
      const h = hold();
      await store.reserve(k, h, [
        { model: NANO, tokens: 700, limit: 1000 },
        { model: MINI, tokens: 15_000_000_000, limit: 15_000_000_000 },
      ], 1234);
      expect(await store.commit(k, h, 'batch_1')).toBe('committed');
      expect(await store.held(k)).toEqual([{ id: 'batch_1', createdMs: 1234, models: [{ model: NANO, tokens: 700 }, { model: MINI, tokens: 15_000_000_000 }] }]);
      const results = await Promise.all(Array.from({ length: 20 }, () => store.release(k, 'batch_1')));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.enqueued(k)).toEqual(new Map());
      expect(await store.held(k)).toEqual([]);
      expect(await store.release(k, 'batch_1')).toBe(false);
      expect(await store.release(k, h)).toBe(false);
      expect(await store.enqueued(k)).toEqual(new Map());
    });

    it('releases only what a record holds, leaving other batches of the key in the queue', async () => {
      const k = key();
      const [h1, h2] = [hold(), hold()];
      await store.reserve(k, h1, items(300, 1000), 1);
      await store.reserve(k, h2, items(500, 1000), 1);
      await store.commit(k, h1, 'batch_a');
      await store.commit(k, h2, 'batch_b');
      expect(await store.release(k, 'batch_a')).toBe(true);
      expect(await store.release(k, 'batch_a')).toBe(false);
      expect(await store.enqueued(k)).toEqual(new Map([[NANO, 500]]));
      expect(await store.reserve(k, hold(), items(500, 1000), 2)).toEqual({ ok: true });
    });

    it('a released hold cannot be committed; a batch committed twice is held once', async () => {
      const k = key();
      const h1 = hold();
      await store.reserve(k, h1, items(100, 1000), 1);
      expect(await store.release(k, h1)).toBe(true);
      expect(await store.commit(k, h1, 'batch_x')).toBe('missing');
      expect(await store.enqueued(k)).toEqual(new Map());

      const [h2, h3] = [hold(), hold()];
      await store.reserve(k, h2, items(100, 1000), 1);
      await store.reserve(k, h3, items(100, 1000), 1);
      expect(await store.commit(k, h2, 'batch_y')).toBe('committed');
      expect(await store.commit(k, h3, 'batch_y')).toBe('duplicate');
      expect(await store.enqueued(k)).toEqual(new Map([[NANO, 100]]));
      expect((await store.held(k)).map((r) => r.id)).toEqual(['batch_y']);
    });

    it('keeps file records and batch owners until their TTL', async () => {
      const record = { models: [{ model: NANO, tokens: 12, requests: 2, outputCap: 32 }] };
      await store.putFile('file-a', record, 60_000);
      await store.putFile('file-b', record, 20);
      expect(await store.getFile('file-a')).toEqual(record);
      expect(await store.getFile('file-unknown')).toBeUndefined();
      await store.setOwner('batch_o', 'key-o', 60_000);
      await store.setOwner('batch_p', 'key-p', 20);
      expect(await store.getOwner('batch_o')).toBe('key-o');
      await new Promise((r) => setTimeout(r, 60));
      expect(await store.getFile('file-b')).toBeUndefined();
      expect(await store.getOwner('batch_p')).toBeUndefined();
      await store.deleteOwner('batch_o');
      expect(await store.getOwner('batch_o')).toBeUndefined();
    });

    it('grants the right to count a batch’s usage once, however many callers race for it, until the TTL', async () => {
      const racers = await Promise.all(Array.from({ length: 20 }, () => store.markCounted('batch_usage_a', 60_000)));
      expect(racers.filter(Boolean)).toHaveLength(1);
      expect(await store.markCounted('batch_usage_a', 60_000)).toBe(false);
      expect(await store.markCounted('batch_usage_b', 20)).toBe(true);
      await new Promise((r) => setTimeout(r, 60));
      expect(await store.markCounted('batch_usage_b', 20)).toBe(true);
    });
  });
}

const redisUrl = inject('redisUrl');
const redisPrefix = uniquePrefix('batchq');
const redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });

storeContract('memory', async () => ({ store: createMemoryBatchStore(), teardown: async () => {} }));
storeContract('redis', async () => ({
  store: createRedisBatchStore(redis, { keyPrefix: redisPrefix }),
  teardown: async () => {
    await deleteByPrefix(redis, redisPrefix);
    await redis.quit();
  },
}));
// Every script touches only the two hashes of one key, under one {hash tag}: cluster-safe.
storeContract('redis cluster (3 masters)', async () => {
  const cluster = await startRedisCluster(3);
  const client = new Cluster(cluster.nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })));
  return {
    store: createRedisBatchStore(client, { keyPrefix: 'batchq-cluster:' }),
    teardown: async () => {
      client.disconnect();
      await cluster.stop();
    },
  };
});

describe('batch store: redis specifics', () => {
  it('keeps a key’s queue and records under one hash tag, under the key prefix', async () => {
    const own = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
    const prefix = uniquePrefix('batchq-keys');
    const store = createRedisBatchStore(own, { keyPrefix: prefix });
    try {
      await store.reserve('app-1', `${HOLD_PREFIX}x`, [{ model: NANO, tokens: 5, limit: 10 }], 1);
      await store.putFile('file-1', { models: [] }, 60_000);
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await own.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 100);
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0');
      expect(keys.sort()).toEqual([`${prefix}batchq:file:file-1`, `${prefix}{batchq|app-1}:held`, `${prefix}{batchq|app-1}:queue`].sort());
      // Idle queues expire (30 days by default), file records by their TTL.
      expect(await own.pttl(`${prefix}{batchq|app-1}:queue`)).toBeGreaterThan(29 * 86_400_000);
      expect(await own.pttl(`${prefix}batchq:file:file-1`)).toBeGreaterThan(59_000);
      // One instance per interval takes the periodic check's turn.
      expect(await store.claim('check', 60_000)).toBe(true);
      expect(await store.claim('check', 60_000)).toBe(false);
    } finally {
      await deleteByPrefix(own, prefix);
      await own.quit();
    }
  });
});
