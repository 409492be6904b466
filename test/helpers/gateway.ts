import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { buildApp } from '../../src/app.js';
import { configFromObject } from '../../src/config/load.js';
import type { configSchema } from '../../src/config/schema.js';
import type { z } from 'zod';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from './fake-upstream.js';

export const CLIENT_KEY = 'tg-test-client-key-0123456789abcdef';
export const UPSTREAM_KEY = 'sk-upstream-secret-key-abcdef0123456789';

export interface TestGateway {
  readonly app: FastifyInstance;
  /** Base URL for an OpenAI client, e.g. http://127.0.0.1:PORT/v1 */
  readonly url: string;
  readonly origin: string;
  /** Every log line the app wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw log text (to search for leaked secrets). */
  rawLogs(): string;
  client(options?: Partial<ConstructorParameters<typeof OpenAI>[0]>): OpenAI;
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly upstreamUrl: string;
  readonly config?: z.input<typeof configSchema>;
  readonly redisUrl?: string;
  readonly upstreamApiKey?: string;
  /** TOLLGATE_ADMIN_TOKEN: turns the admin API on. */
  readonly adminToken?: string;
}

/** Build tollgate in-process on a free port, with captured logs and one client key. */
export async function startGateway(options: GatewayOptions): Promise<TestGateway> {
  const chunks: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _enc, callback) {
      const text = chunk.toString('utf8');
      chunks.push(text);
      for (const line of text.split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const config = configFromObject({
    keys: [{ id: 'test-key', key: CLIENT_KEY, tier: 'tier-1' }],
    ...options.config,
  });
  const app = await buildApp({
    config,
    upstreamUrl: options.upstreamUrl,
    upstreamApiKey: options.upstreamApiKey ?? UPSTREAM_KEY,
    redisUrl: options.redisUrl,
    logLevel: 'info',
    logStream,
    adminToken: options.adminToken,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    app,
    url: `${origin}/v1`,
    origin,
    logs,
    rawLogs: () => chunks.join(''),
    client: (clientOptions) => new OpenAI({ baseURL: `${origin}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, ...clientOptions }),
    close: () => app.close(),
  };
}

/** What `useGateway` gives a test file: set before its first test, closed after its last. */
export interface GatewayFixture {
  readonly upstream: FakeUpstream;
  readonly gateway: TestGateway;
}

export interface FixtureOptions extends Omit<GatewayOptions, 'upstreamUrl'> {
  readonly upstream?: FakeUpstreamOptions;
  /** Forget the fake upstream's recorded requests and scripted steps before each test (default true). */
  readonly resetEachTest?: boolean;
}

/**
 * The set-up most integration files share: one fake upstream (holding the upstream key), one
 * in-process gateway in front of it, both closed after the file; the upstream reset before each
 * test. Options that depend on the suite's injected values (a Redis URL) may be given as a function.
 */
export function useGateway(options: FixtureOptions | (() => FixtureOptions) = {}): GatewayFixture {
  let upstream: FakeUpstream | undefined;
  let gateway: TestGateway | undefined;
  let reset = true;
  beforeAll(async () => {
    const { upstream: upstreamOptions, resetEachTest, ...gatewayOptions } = typeof options === 'function' ? options() : options;
    reset = resetEachTest ?? true;
    upstream = await startFakeUpstream({ apiKey: gatewayOptions.upstreamApiKey ?? UPSTREAM_KEY, ...upstreamOptions });
    gateway = await startGateway({ ...gatewayOptions, upstreamUrl: upstream.url });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });
  beforeEach(() => {
    if (reset) upstream?.reset();
  });
  return {
    get upstream(): FakeUpstream {
      if (!upstream) throw new Error('useGateway: the fake upstream is set up in beforeAll');
      return upstream;
    },
    get gateway(): TestGateway {
      if (!gateway) throw new Error('useGateway: the gateway is set up in beforeAll');
      return gateway;
    },
  };
}
