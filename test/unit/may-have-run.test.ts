// A timed-out Redis call had been sent and may still run: its counters must not be retried (they
// would count twice). Other failures (not connected, refused) never reached Redis: retried.
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { mayHaveRun } from '../../src/limits/redis-store.js';
import { startRedisServer } from '../helpers/redis-server.js';

describe('mayHaveRun', () => {
  it('is true for a command that timed out on a frozen Redis, false for one refused while disconnected', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.url, { commandTimeout: 100, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    try {
      await new Promise((resolve) => client.once('ready', resolve));
      await client.ping();
      server.kill('SIGSTOP');
      const timedOut = await client.incr('may-have-run').catch((e: unknown) => e);
      expect(mayHaveRun(timedOut)).toBe(true);
      server.kill('SIGCONT');
      // The frozen INCR did run once Redis woke: retrying it would have counted it twice.
      await expect.poll(() => client.get('may-have-run'), { timeout: 5000 }).toBe('1');
      client.disconnect();
      const refused = await client.incr('may-have-run').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(Error);
      expect(mayHaveRun(refused)).toBe(false);
    } finally {
      server.kill('SIGCONT');
      client.disconnect();
      await server.stop();
    }
  });
});
