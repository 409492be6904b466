import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { configDir, freshGet, pollGet, spawnTollgate, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

// The real process entry as a child process: start-up, config errors, readiness and SIGTERM drain.

const UPSTREAM_KEY = 'sk-upstream-lifecycle-0123456789abcdef';
const CLIENT_KEY = 'tg-lifecycle-client-key-0123456789';

let upstream: FakeUpstream;
const configs = configDir();
const procs: TollgateProcess[] = [];
const redises: RedisServer[] = [];

const KEY_CONFIG = (extra = '') => `keys:\n  - id: life\n    key: \${LIFE_KEY}\n    tier: tier-1\n${extra}`;

async function start(config: string, env: Record<string, string> = {}): Promise<TollgateProcess> {
  const proc = await startTollgate(baseEnv(configs.write(`cfg-${procs.length}.yaml`, config), env));
  procs.push(proc);
  return proc;
}

function baseEnv(configPath: string, env: Record<string, string> = {}): Record<string, string> {
  return { TOLLGATE_CONFIG: configPath, TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY, LIFE_KEY: CLIENT_KEY, ...env };
}

/** A raw streaming chat request; returns the response and a reader over its body. */
async function openStream(proc: TollgateProcess, chunks: number, delayMs: number) {
  const res = await fetch(`${proc.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${CLIENT_KEY}`,
      'content-type': 'application/json',
      'x-fake-chunks': String(chunks),
      'x-fake-chunk-delay-ms': String(delayMs),
    },
    body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'count slowly' }], stream: true }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    text: () => text,
    /** Read until `marker` appears; false if the body ended first. */
    async readUntil(marker: string): Promise<boolean> {
      while (!text.includes(marker)) {
        const { done, value } = await reader.read();
        if (done) return false;
        text += decoder.decode(value, { stream: true });
      }
      return true;
    },
    /** Read to the end; reports whether the body ended cleanly or with an error. */
    async readToEnd(): Promise<'end' | 'error'> {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'end';
          text += decoder.decode(value, { stream: true });
        }
      } catch {
        return 'error';
      }
    },
  };
}

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
});
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill()));
  await Promise.all(redises.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await upstream?.close();
  configs.cleanup();
});

describe('SIGTERM', () => {
  it('lets a long stream finish, refuses new work meanwhile, then exits 0', { timeout: 40_000 }, async () => {
    // The grace period is far longer than the stream: the process must exit once the stream is
    // done (its keep-alive connection then idle), not when the deadline fires.
    const proc = await start(KEY_CONFIG('server:\n  shutdown_grace_ms: 15000\n'));
    const stream = await openStream(proc, 40, 50);
    expect(await stream.readUntil('"content":"')).toBe(true);

    proc.child.kill('SIGTERM');
    await proc.waitForOutput('draining');
    // a new connection is refused (listener closed) or answered 503, never served normally
    const probe = await freshGet(`${proc.origin}/healthz`, 3000).then(
      (r) => r.status,
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );
    expect([503, 'ECONNREFUSED', 'ECONNRESET']).toContain(probe);

    expect(await stream.readToEnd()).toBe('end');
    const events = stream.text().split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events.at(-1)).toBe('data: [DONE]');
    const contents = events.filter((e) => e.includes('"content":"') && !e.includes('"role"'));
    expect(contents).toHaveLength(40);
    expect(stream.text()).not.toContain('"error"');

    expect(await proc.exited).toBe(0);
    expect(proc.stdout()).toContain('"msg":"stopped"');
    expect(proc.stdout()).not.toContain('shutdown deadline reached');
  });

  it('cuts streams at shutdown_grace_ms and still exits 0 (no hang)', { timeout: 30_000 }, async () => {
    const proc = await start(KEY_CONFIG('server:\n  shutdown_grace_ms: 500\n'));
    upstream.reset();
    const stream = await openStream(proc, 1000, 50);
    expect(await stream.readUntil('"content":"')).toBe(true);
    proc.child.kill('SIGTERM');

    const [ending, code] = await Promise.all([stream.readToEnd(), proc.exited]);
    expect(code).toBe(0);
    expect(['end', 'error']).toContain(ending);
    expect(stream.text()).not.toContain('data: [DONE]');
    expect(proc.stdout()).toContain('shutdown deadline reached');
    // the upstream request was given up, not left running
    const rec = upstream.requests.find((r) => r.path === '/v1/chat/completions');
    expect(rec).toBeDefined();
    await rec!.finished;
    expect(rec!.aborted).toBe(true);
  });
});

describe('config errors stop the process', () => {
  it('an invalid tier: non-zero exit, stderr names the file and keys[0].tier', async () => {
    const path = configs.write('bad-tier.yaml', 'keys:\n  - id: bad\n    key: ${LIFE_KEY}\n    tier: platinum\n');
    const proc = await spawnTollgate(baseEnv(path));
    procs.push(proc);
    const code = await proc.exited;
    expect(code).not.toBe(0);
    expect(typeof code).toBe('number');
    expect(proc.stderr()).toContain(path);
    expect(proc.stderr()).toContain('keys[0].tier');
    expect(proc.stderr()).not.toContain(CLIENT_KEY);
  });

  it('a missing config file: non-zero exit with a clear message', async () => {
    const path = '/nonexistent/tollgate-test/missing.yaml';
    const proc = await spawnTollgate(baseEnv(path));
    procs.push(proc);
    const code = await proc.exited;
    expect(code).not.toBe(0);
    expect(typeof code).toBe('number');
    expect(proc.stderr()).toContain(path);
    expect(proc.stderr()).toMatch(/no such file|not found|cannot read/i);
    expect(proc.stderr()).not.toMatch(/^\s+at /m); // a message, not a stack trace
  });

  it('an unset variable without default: non-zero exit naming the variable and the path', async () => {
    const path = configs.write('unset.yaml', 'keys:\n  - id: x\n    key: ${TOLLGATE_TEST_UNSET_VAR}\n    tier: free\n');
    const proc = await spawnTollgate(baseEnv(path));
    procs.push(proc);
    expect(await proc.exited).not.toBe(0);
    expect(proc.stderr()).toContain('TOLLGATE_TEST_UNSET_VAR');
    expect(proc.stderr()).toContain('keys[0].key');
  });
});

describe('/readyz', () => {
  it('is 200 without REDIS_URL', async () => {
    const proc = await start(KEY_CONFIG());
    const ready = await freshGet(`${proc.origin}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
  });

  it('follows Redis: ok, 503 when killed (limited requests refused by the default fail_closed policy), ok again after restart', { timeout: 60_000 }, async () => {
    const redis = await startRedisServer();
    redises.push(redis);
    const proc = await start(KEY_CONFIG(), { REDIS_URL: redis.url });
    const ok = await pollGet(`${proc.origin}/readyz`, (r) => r.status === 200);
    expect(JSON.parse(ok.body)).toEqual({ status: 'ready', redis: 'ok' });

    redis.kill('SIGKILL');
    await redis.exited;
    // each attempt must come back (freshGet times out after 5 s): unreachable Redis never hangs /readyz
    const down = await pollGet(`${proc.origin}/readyz`, (r) => r.status !== 200);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toMatchObject({ redis: 'unreachable' });
    expect((await freshGet(`${proc.origin}/healthz`)).status).toBe(200);

    const client = new OpenAI({ baseURL: `${proc.origin}/v1`, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 10_000 });
    // The limiter cannot reach Redis: fail_closed answers an OpenAI-shaped 503 at once, no hang.
    const refused = await client.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'still there?' }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((refused as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ type: 'server_error', code: 'service_unavailable' });
    // Calls without a model are limited too: the same 503, and the process keeps serving.
    const listed = await client.models.list().catch((e: unknown) => e);
    expect((listed as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((await freshGet(`${proc.origin}/healthz`)).status).toBe(200);

    const again = await startRedisServer({ port: redis.port });
    redises.push(again);
    const back = await pollGet(`${proc.origin}/readyz`, (r) => r.status === 200, 20_000);
    expect(JSON.parse(back.body)).toEqual({ status: 'ready', redis: 'ok' });
    await vi.waitFor(async () => {
      const completion = await client.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'back?' }] });
      expect(completion.object).toBe('chat.completion');
    }, { timeout: 10_000, interval: 300 });
  });
});
