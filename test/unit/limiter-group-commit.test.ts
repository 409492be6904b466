// The Redis limiter's group commit: while a script call on a hash tag is in flight, later calls on
// that tag wait for its answer and then go together, as one call; a frozen Redis cannot make them
// wait longer than a couple of milliseconds before they are sent anyway (then the command timeout
// bounds them, as any call). Redis is frozen with SIGSTOP to hold a call in flight.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../../src/limits/redis-store.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const MINUTE = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const turn = () => new Promise((r) => setImmediate(r));

describe('redis limiter: group commit', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    server.kill('SIGCONT');
    await server.stop();
  });

  /** Script calls Redis has run since the last reset (INFO commandstats). */
  async function scriptCalls(probe: Redis): Promise<number> {
    const info = await probe.info('commandstats');
    return [...info.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  }

  it('calls made while one is in flight go as one call once it answers, each with its own outcome', async () => {
    const client = new Redis(server.url);
    const probe = new Redis(server.url);
    try {
      // The hold widened from a couple of milliseconds to a minute: five loop turns on a busy
      // machine may take longer than the default, and the calls must gather whatever the load.
      const store = createRedisStore(client, { holdMaxMs: MINUTE });
      const call = { key: '{gc-one|gpt-4.1-nano}:rpm', limit: 5, windowMs: MINUTE, units: 1 };
      await store.admit([{ ...call, key: '{gc-warm}:rpm' }]); // the script is loaded
      await probe.config('RESETSTAT');
      server.kill('SIGSTOP');
      const first = store.admit([call]);
      await turn();
      // Five more calls, over five later turns, while the first is in flight: they wait for it.
      const later: unknown[] = [];
      for (let i = 0; i < 5; i++) {
        later.push(store.admit([call]));
        await turn();
      }
      server.kill('SIGCONT');
      const outcomes = await Promise.all([first, ...later]);
      // Limit 5: the first five admitted in arrival order, the sixth refused.
      expect(outcomes.map((o) => (o as { allowed: boolean }).allowed)).toEqual([true, true, true, true, true, false]);
      expect(outcomes.slice(0, 5).map((o) => Math.floor(((o as { levels: number[] }).levels[0] as number) / MINUTE))).toEqual([4, 3, 2, 1, 0]);
      // One call for the first, one for the five that gathered behind it.
      expect(await scriptCalls(probe)).toBe(2);
    } finally {
      server.kill('SIGCONT');
      client.disconnect();
      probe.disconnect();
    }
  });

  it('a frozen Redis does not hold later calls back: they are sent within milliseconds', async () => {
    const client = new Redis(server.url);
    const probe = new Redis(server.url);
    try {
      const store = createRedisStore(client);
      const call = { key: '{gc-two|gpt-4.1-nano}:rpm', limit: 100, windowMs: MINUTE, units: 1 };
      await store.admit([{ ...call, key: '{gc-warm}:rpm' }]);
      await probe.config('RESETSTAT');
      server.kill('SIGSTOP');
      const first = store.admit([call]);
      await sleep(50);
      const second = store.admit([call]);
      await sleep(50);
      const third = store.admit([call]);
      await sleep(50);
      server.kill('SIGCONT');
      await Promise.all([first, second, third]);
      // Each was sent on its own before Redis woke: nothing waited for the frozen first call.
      expect(await scriptCalls(probe)).toBe(3);
    } finally {
      server.kill('SIGCONT');
      client.disconnect();
      probe.disconnect();
    }
  });
});
