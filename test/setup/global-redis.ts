// Vitest global setup: one redis-server for the whole run, its URL provided as inject('redisUrl').
// Set TOLLGATE_TEST_REDIS_URL to use an existing Redis instead of spawning one.
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startRedisServer } from '../helpers/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.TOLLGATE_TEST_REDIS_URL;
  if (external) {
    project.provide('redisUrl', external);
    return async () => {};
  }
  const redis = await startRedisServer();
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
  };
}
