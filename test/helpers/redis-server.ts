// Spawns throwaway `redis-server` processes for tests (no persistence, temp dir, 127.0.0.1 only).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal (default SIGKILL) without waiting; e.g. to simulate a crash. */
  kill(signal?: NodeJS.Signals): void;
  /** Settles when the process has exited. */
  exited: Promise<void>;
}

export interface StartRedisOptions {
  /** Port to listen on (default: a free one). Use it to restart on the same port after a kill. */
  port?: number;
  /** Binary (default TOLLGATE_TEST_REDIS_BIN, which the global setup sets, else `redis-server` from PATH). */
  bin?: string;
  /** Extra command-line arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
  /** How long to wait for PING to answer (default 10 s). */
  readyTimeoutMs?: number;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // never leave orphan redis-servers behind if the test runner exits without teardown
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket; resolves true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let buf = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startOnce(port: number, opts: StartRedisOptions): Promise<RedisServer> {
  const bin = opts.bin ?? process.env.TOLLGATE_TEST_REDIS_BIN ?? 'redis-server';
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    '--daemonize', 'no',
    '--protected-mode', 'no',
    '--loglevel', 'warning',
    '--logfile', '',
    ...(opts.args ?? []),
  ];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => {
    if (output.length < 8192) output += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  let exited = false;
  let spawnError: NodeJS.ErrnoException | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
      exited = true;
      resolve();
    });
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  void exitedPromise.then(() => {
    running.delete(child);
    rmSync(dir, { recursive: true, force: true });
  });
  running.add(child);
  installExitHook();

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
  for (;;) {
    if (exited) {
      if (spawnError?.code === 'ENOENT') {
        throw new Error(
          `Cannot start '${bin}': not found on PATH. The tests need a local Redis server binary; ` +
            'install it (e.g. `apt-get install redis-server` or `brew install redis`).',
        );
      }
      throw new Error(
        `redis-server on port ${port} exited before becoming ready` +
          (spawnError ? `: ${spawnError.message}` : '') +
          (output ? `\n${output.trim()}` : ''),
      );
    }
    if (await ping(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} did not answer PING within the timeout\n${output.trim()}`);
    }
    await sleep(20);
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    exited: exitedPromise,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (!exited) child.kill(signal);
    },
    stop() {
      stopping ??= (async () => {
        if (!exited) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exitedPromise;
          clearTimeout(timer);
        }
        await exitedPromise;
      })();
      return stopping;
    },
  };
}

/** Starts a redis-server on 127.0.0.1 (a free port unless `port` is given) and waits until it answers PING. */
export async function startRedisServer(opts: StartRedisOptions = {}): Promise<RedisServer> {
  // A probed free port can be taken before redis binds it, and a given port can still be held by a
  // just-killed predecessor: retry a few times on "Address already in use".
  const attempts = opts.port !== undefined ? 20 : 3;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      return await startOnce(opts.port ?? (await freePort()), opts);
    } catch (err) {
      if (!/already in use/i.test((err as Error).message)) throw err;
      lastError = err;
      await sleep(100);
    }
  }
  throw lastError;
}
