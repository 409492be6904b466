/**
 * Child-process management for the benchmark: free ports, spawning, readiness
 * (ready line on stdout/stderr or HTTP health polling), CPU accounting and
 * cleanup (no orphans on normal exit, error, SIGINT or SIGTERM).
 *
 * Children are spawned `detached` (own process group) and killed by group, so
 * wrappers that fork again (npm, the tsx CLI, ...) cannot leave orphans behind.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

export interface ChildSpec {
  /** Short name used in messages. */
  name: string;
  command: string;
  args: string[];
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
  cwd?: string;
  /**
   * Readiness: either a regex matched against each stdout/stderr line, or an
   * HTTP URL polled with GET until it answers 200.
   */
  ready: { line: RegExp } | { httpGet: string };
  /** Default 30 s. */
  readyTimeoutMs?: number;
  /**
   * What to do with the child's stdout once ready. 'ignore' sends it to
   * /dev/null from the start (cheapest; only possible with an HTTP readiness
   * check). 'drain' pipes it and discards what it reads (keeps a short tail).
   */
  stdout?: 'ignore' | 'drain';
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** The ready line matched (line readiness only). */
  readonly readyMatch: RegExpMatchArray | undefined;
  /** True once the process has exited. */
  exited(): boolean;
  /** Human-readable exit description, or undefined while running. */
  exitInfo(): string | undefined;
  /** Last few KB of stderr (and drained stdout). */
  outputTail(): string;
  /** user+system CPU seconds of the process so far (Linux /proc), or undefined. */
  cpuSeconds(): number | undefined;
  /** SIGTERM the process group, SIGKILL after a grace period. */
  stop(graceMs?: number): Promise<void>;
}

const TAIL_BYTES = 8 * 1024;
const live = new Set<ChildImpl>();

/** Find a free TCP port on 127.0.0.1 by binding port 0 and closing. */
export async function getFreePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

let clkTck: number | undefined;
function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** user+system CPU seconds of a pid (whole thread group) from /proc, or undefined. `file`: a thread's stat instead. */
export function procCpuSeconds(pid: number, file = `/proc/${pid}/stat`): number | undefined {
  try {
    const stat = readFileSync(file, 'utf8');
    // comm (field 2) may contain spaces/parens: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime = field 14, stime = field 15.
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return (utime + stime) / clockTicks();
  } catch {
    return undefined;
  }
}

/**
 * Give a process's session `nice` (root only; 0: nothing): on a shared host, the measured
 * processes then get the CPU as if the host were theirs. Children run in sessions of their own
 * (spawned detached), and with the kernel's autogroups on (sched_autogroup_enabled) CPU is shared
 * between sessions before nice values count within one: the session's value is the one that
 * shields it from other sessions' work; the process's own value is set too, for kernels without.
 */
export function niceSession(pid: number, nice: number): void {
  if (nice === 0 || process.getuid?.() !== 0) return;
  try {
    os.setPriority(pid, nice);
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {
    // No autogroups on this kernel: the process's nice value is all there is.
  }
}

class ChildImpl implements Child {
  readonly name: string;
  readonly pid: number;
  readyMatch: RegExpMatchArray | undefined;
  private tail = '';
  private exit: string | undefined;
  readonly exitPromise: Promise<void>;

  constructor(
    name: string,
    private readonly proc: ChildProcess,
  ) {
    this.name = name;
    if (proc.pid === undefined) throw new Error(`${name}: spawn failed (no pid)`);
    this.pid = proc.pid;
    this.exitPromise = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = signal !== null ? `killed by ${signal}` : `exited with code ${String(code)}`;
        live.delete(this);
        resolve();
      });
      proc.once('error', (err) => {
        this.exit ??= `spawn error: ${err.message}`;
        live.delete(this);
        resolve();
      });
    });
  }

  appendOutput(text: string): void {
    this.tail = (this.tail + text).slice(-TAIL_BYTES);
  }

  exited(): boolean {
    return this.exit !== undefined;
  }

  exitInfo(): string | undefined {
    return this.exit;
  }

  outputTail(): string {
    return this.tail;
  }

  cpuSeconds(): number | undefined {
    return this.exited() ? undefined : procCpuSeconds(this.pid);
  }

  killGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      try {
        this.proc.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  async stop(graceMs = 3000): Promise<void> {
    if (this.exited()) return;
    this.killGroup('SIGTERM');
    const timer = sleep(graceMs).then(() => 'timeout' as const);
    const res = await Promise.race([this.exitPromise.then(() => 'exited' as const), timer]);
    if (res === 'timeout') {
      this.killGroup('SIGKILL');
      await Promise.race([this.exitPromise, sleep(1000)]);
    } else {
      // The leader exited; make sure nothing else in its group survives.
      this.killGroup('SIGKILL');
    }
  }
}

/**
 * Split a stream into lines for `cb` until switchToRaw() is called; after that
 * chunks go unsplit to `raw` (cheap draining of e.g. per-request log lines).
 */
function onLines(
  stream: NodeJS.ReadableStream,
  cb: (line: string) => void,
  raw: (chunk: string) => void,
): { switchToRaw: () => void } {
  let buf = '';
  let rawMode = false;
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (rawMode) {
      raw(chunk);
      return;
    }
    buf += chunk;
    let idx: number;
    while ((idx = buf.indexOf('\n')) >= 0) {
      cb(buf.slice(0, idx).replace(/\r$/, ''));
      buf = buf.slice(idx + 1);
    }
    if (buf.length > 64 * 1024) buf = buf.slice(-TAIL_BYTES);
  });
  return {
    switchToRaw: () => {
      rawMode = true;
      if (buf) raw(buf);
      buf = '';
    },
  };
}

/** Poll GET url until it answers 200 (or the deadline / isAlive() says stop). */
export async function waitForHttp(
  url: string,
  opts: { timeoutMs: number; isAlive?: () => boolean; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (opts.isAlive && !opts.isAlive()) throw new Error(`process died while waiting for ${url}`);
    try {
      const res = await request(url, { method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
      last = `HTTP ${res.statusCode}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(opts.intervalMs ?? 100);
  }
  throw new Error(`timed out waiting for ${url} (last: ${last})`);
}

/** Spawn a child and wait until it is ready. Throws (and kills it) on failure. */
export async function startChild(spec: ChildSpec): Promise<Child> {
  installCleanupHandlers();
  const stdoutMode = spec.stdout ?? 'drain';
  if (stdoutMode === 'ignore' && 'line' in spec.ready) {
    throw new Error(`${spec.name}: line readiness needs stdout 'drain'`);
  }
  const proc = spawn(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', stdoutMode === 'ignore' ? 'ignore' : 'pipe', 'pipe'],
    detached: true,
  });
  const child = new ChildImpl(spec.name, proc);
  live.add(child);

  const timeoutMs = spec.readyTimeoutMs ?? 30_000;
  let readyResolve: ((m: RegExpMatchArray) => void) | undefined;
  const lineReady = new Promise<RegExpMatchArray>((resolve) => (readyResolve = resolve));
  const lineHandler = (line: string): void => {
    child.appendOutput(line + '\n');
    if ('line' in spec.ready && readyResolve) {
      const m = line.match(spec.ready.line);
      if (m) {
        readyResolve(m);
        readyResolve = undefined;
      }
    }
  };
  const rawHandler = (chunk: string): void => child.appendOutput(chunk);
  const readers = [proc.stdout, proc.stderr].flatMap((s) => (s ? [onLines(s, lineHandler, rawHandler)] : []));

  const fail = async (why: string): Promise<never> => {
    await child.stop(1000);
    const tail = child.outputTail().trim();
    throw new Error(
      `${spec.name} failed to start: ${why}\n  command: ${spec.command} ${spec.args.join(' ')}` +
        (tail ? `\n  output (tail):\n${indent(tail, '    ')}` : ''),
    );
  };

  const died = child.exitPromise.then(() => 'died' as const);
  if ('line' in spec.ready) {
    const timeout = sleep(timeoutMs).then(() => 'timeout' as const);
    const res = await Promise.race([lineReady, died, timeout]);
    if (res === 'died') return await fail(child.exitInfo() ?? 'exited');
    if (res === 'timeout') return await fail(`no ready line matching ${String(spec.ready.line)} within ${timeoutMs} ms`);
    child.readyMatch = res;
  } else {
    try {
      await waitForHttp(spec.ready.httpGet, { timeoutMs, isAlive: () => !child.exited() });
    } catch (err) {
      return await fail(child.exitInfo() ?? (err as Error).message);
    }
  }
  for (const r of readers) r.switchToRaw();
  return child;
}

/** Stop every live child (in parallel). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

function killAllSync(): void {
  for (const c of live) c.killGroup('SIGKILL');
}

let handlersInstalled = false;
/** Make sure children die with us: on exit, SIGINT, SIGTERM, SIGHUP. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig} received, stopping children...\n`);
      const hardExit = setTimeout(() => {
        killAllSync();
        process.exit(130);
      }, 5000);
      hardExit.unref();
      void stopAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

export function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}
