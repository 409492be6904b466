import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // test-tools first: it finds or installs the binaries the others (and the tests) start.
    globalSetup: ['test/setup/test-tools.ts', 'test/setup/global-redis.ts'],
    pool: 'forks',
    // Two cores: more workers than that only make the heavy files (three gateways, a Redis
    // Cluster) starve each other and turn their timeouts into failures.
    maxWorkers: 2,
    // Generous: tests that spawn gateways (tsx) must not fail on a loaded 2-core host; a hang still ends.
    testTimeout: 45_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
  },
});
