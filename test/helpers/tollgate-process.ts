// Runs the real process entry (`node --import tsx src/server.ts`) as a child, for lifecycle tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface TollgateProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  stdout(): string;
  stderr(): string;
  /** Settles with the exit code (or the signal name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** Resolves once `text` has appeared on stdout. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** SIGKILL if still running; waits for the exit. */
  kill(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolvePort(port));
    });
  });
}

/** A temp dir holding config files; remove it with the returned cleanup. */
export function configDir(): { write(name: string, yaml: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-proc-'));
  return {
    write(name, yaml) {
      const path = join(dir, name);
      writeFileSync(path, yaml);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Spawn the gateway. `env` is added to a clean copy of the environment (no inherited REDIS_URL etc.). */
export async function spawnTollgate(env: Record<string, string>): Promise<TollgateProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const base = { ...process.env };
  for (const name of ['REDIS_URL', 'TOLLGATE_CONFIG', 'TOLLGATE_UPSTREAM_URL', 'OPENAI_API_KEY', 'TOLLGATE_ADMIN_TOKEN', 'TOLLGATE_URL', 'PORT', 'HOST', 'LOG_LEVEL']) delete base[name];
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/helpers/exit-with-parent.mjs', 'src/server.ts'], {
    cwd: PROJECT_ROOT,
    env: { ...base, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', TOLLGATE_TEST_PARENT_PID: String(process.pid), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString('utf8');
    for (const w of waiters) w();
  });
  child.stderr?.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | string>((resolveExit) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      for (const w of waiters) w();
      resolveExit(code ?? signal ?? 'unknown');
    });
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  return {
    child,
    port,
    origin: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForOutput(text, timeoutMs = 10_000) {
      return new Promise<void>((resolveWait, reject) => {
        const check = () => {
          if (out.includes(text)) done(undefined);
          else if (hasExited) done(new Error(`process exited before printing ${text}\n${out}\n${err}`));
        };
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${text}\n${out}\n${err}`)), timeoutMs);
        const done = (e: Error | undefined) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (e) reject(e);
          else resolveWait();
        };
        waiters.add(check);
        check();
      });
    },
    async kill() {
      if (!hasExited) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface HttpResult {
  status: number;
  body: string;
}

/** One GET on a fresh connection (no agent, no keep-alive). Rejects on connection errors or after timeoutMs. */
export function freshGet(url: string, timeoutMs = 5000): Promise<HttpResult> {
  return new Promise((resolveGet, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Poll GET url until `accept` says yes (each attempt on a fresh connection). */
export async function pollGet(url: string, accept: (r: HttpResult) => boolean, timeoutMs = 15_000): Promise<HttpResult> {
  const deadline = Date.now() + timeoutMs;
  let last: HttpResult | Error | undefined;
  for (;;) {
    try {
      last = await freshGet(url);
      if (accept(last)) return last;
    } catch (err) {
      last = err as Error;
    }
    if (Date.now() > deadline) throw new Error(`GET ${url}: condition not met; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Spawn and wait until /healthz answers 200 (fails fast with stderr if the process dies). */
export async function startTollgate(env: Record<string, string>): Promise<TollgateProcess> {
  const proc = await spawnTollgate(env);
  // The process compiles src/ with tsx first: on a shared two-core machine that alone can take
  // tens of seconds. Generous, since a process that dies fails this at once anyway.
  const ready = pollGet(`${proc.origin}/healthz`, (r) => r.status === 200, 90_000);
  const died = proc.exited.then((code) => {
    throw new Error(`tollgate exited (${code}) before /healthz answered\n${proc.stderr()}`);
  });
  await Promise.race([ready, died]);
  return proc;
}
