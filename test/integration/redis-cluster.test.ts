import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiter } from '../../src/limits/limiter.js';
import { createRedisStore } from '../../src/limits/redis-store.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';

// The limiter on a real Redis Cluster (3 masters): every script keeps its keys on one slot, so
// admissions are atomic there too, and the whole gateway runs on the cluster.

let cluster: RedisCluster;
let client: Cluster;
let upstream: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })));
  upstream = await startFakeUpstream();
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    config: {
      redis: { cluster_nodes: cluster.nodes },
      keys: [
        { id: 'cluster-free', key: 'tg-cluster-free-0123456789', tier: 'free' },
        { id: 'cluster-tier1', key: 'tg-cluster-tier1-0123456789', tier: 'tier-1' },
      ],
    },
    adminToken: 'tg-admin-cluster-0123456789abcdef',
  });
}, 60_000);
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
  client?.disconnect();
  await cluster?.stop();
});

describe('Redis Cluster', () => {
  it('admits exactly the limit for keys spread over different slots, concurrently', async () => {
    const catalogue = buildCatalogue(configFromObject({}));
    const limiter = createLimiter({ store: createRedisStore(client), catalogue, keyPrefix: 'cluster-test:' });
    const callers = Array.from({ length: 6 }, (_, i) => ({ id: `app-${i}`, tier: 'free' as const, limits: undefined, maxWaitMs: undefined }));
    const attempts = callers.flatMap((caller) => Array.from({ length: 10 }, () => limiter.admit({ caller, model: 'gpt-4.1-nano', tokens: 10 })));
    const results = await Promise.allSettled(attempts);
    // free tier: 3 RPM per key, whatever slot each key hashes to
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(6 * 3);
    const slots = new Set(await Promise.all(callers.map((c) => client.cluster('KEYSLOT', `cluster-test:{${c.id}}|gpt-4.1-nano:rpm`))));
    expect(slots.size).toBeGreaterThan(1);
  });

  it('serves through the gateway with the limits in the cluster', async () => {
    const free = gateway.client({ apiKey: 'tg-cluster-free-0123456789' });
    const ask = () => free.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });
    const first = await ask().withResponse();
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('2');
    await ask();
    await ask();
    await expect(ask()).rejects.toMatchObject({ status: 429 });
    const ready = await fetch(`${gateway.origin}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready', redis: 'ok' });
  });

  it('keys created at run time, their budgets and usage counters work on the cluster (one hash tag per key)', async () => {
    const admin = { authorization: 'Bearer tg-admin-cluster-0123456789abcdef', 'content-type': 'application/json' };
    const created = await fetch(`${gateway.origin}/admin/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'cluster-budget', tier: 'tier-1', budget_usd: { daily: 0.0005 } }) });
    expect(created.status).toBe(201);
    const client = gateway.client({ apiKey: ((await created.json()) as { key: string }).key });
    // $0.0005 a day: 1000 output tokens at $0.40 per 1M fit once, not twice.
    const ask = () => client.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000 }, { headers: { 'x-fake-chunks': '1000' } });
    await ask();
    await expect(ask()).rejects.toMatchObject({ status: 429, code: 'insufficient_quota' });
    const usage = (await (await fetch(`${gateway.origin}/admin/keys/cluster-budget/usage`, { headers: admin })).json()) as { usage: { today: { requests: number; output_tokens: number } } };
    expect(usage.usage.today).toMatchObject({ requests: 1, output_tokens: 1000 });
  });
});
