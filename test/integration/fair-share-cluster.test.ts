// Fair share on a real Redis Cluster (3 masters): a shared ceiling's buckets and its entities'
// state live under the ceiling's hash tag, so lua/fair-share.lua runs on one slot, atomically.
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCeilings, isRefusal } from '../../src/limits/ceiling.js';
import { createRedisStore } from '../../src/limits/redis-store.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';

let cluster: RedisCluster;
let client: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })));
}, 60_000);
afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

describe('fair share on Redis Cluster', () => {
  it('admits exactly each ceiling, for ceilings spread over different slots, concurrently', async () => {
    const ceilings = createCeilings({ store: createRedisStore(client), keyPrefix: 'share-cluster:', share: { activeMs: 3_000, burstMs: 10_000 } });
    const upstreams = ['a', 'b', 'c', 'd', 'e', 'f'];
    const claims = [
      { entity: 'key:one', weight: 3, priority: 0 },
      { entity: 'group:two', weight: 1, priority: 1 },
    ];
    const answers = await Promise.all(
      upstreams.flatMap((up) => Array.from({ length: 20 }, (_, i) => Promise.resolve(ceilings.take(up, 'org', 'gpt-4.1-nano', { rpm: 8, tpm: 1_000_000 }, 100, claims[i % 2], 0)).then((answer) => ({ up, answer })))),
    );
    for (const up of upstreams) {
      const mine = answers.filter((a) => a.up === up);
      expect(mine.filter((a) => !isRefusal(a.answer))).toHaveLength(8);
      expect(mine.filter((a) => !isRefusal(a.answer)).every((a) => !isRefusal(a.answer) && a.answer.borrowed !== undefined)).toBe(true);
    }
    const slots = new Set(await Promise.all(upstreams.map((up) => client.cluster('KEYSLOT', `share-cluster:{up|${up}|gpt-4.1-nano}:share`))));
    expect(slots.size).toBeGreaterThan(1);
  });
});
