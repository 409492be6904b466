/**
 * The load generator a production host's figures come from: wrk (C, not Node), so the gateway's
 * CPU per request is read without a Node client competing for the same cores, and every target
 * meets the same client. One Lua script per scenario, written from the scenario's own data (the
 * undici modes send the same bytes). The gateway's CPU is read from /proc/<pid>/stat
 * (utime + stime) over each wrk run.
 */
import { execFileSync, spawnSync, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Scenario } from './load.js';
import { procCpuSeconds } from './processes.js';

/** wrk's own count of one run. */
export interface WrkRun {
  requests: number;
  durationS: number;
  /** Non-2xx answers plus socket errors (connect, read, write, timeout). */
  errors: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/** Is wrk on PATH? If not: install it with apt-get when root, else throw saying how. */
export function ensureWrk(log: (msg: string) => void): void {
  if (spawnSync('wrk', ['--version']).error === undefined) return;
  const how = 'install it with `sudo apt-get install -y wrk` (Debian/Ubuntu), or set BENCH_WRK=0 to skip the wrk table';
  if (process.getuid?.() !== 0) throw new Error(`wrk not found: ${how}`);
  log('wrk not found: installing it (apt-get install -y wrk)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', 'wrk'], { stdio: 'inherit', env });
  } catch (err) {
    throw new Error(`installing wrk failed (${(err as Error).message}): ${how}`);
  }
}

const lua = (s: string): string => JSON.stringify(s); // a JSON string is a valid Lua string literal here

/** One script per scenario (in a temp dir): method, headers and body as the undici modes send them. */
export function writeScripts(scenarios: readonly Scenario[], extraHeaders: Record<string, string>): Map<string, string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-wrk-'));
  const scripts = new Map<string, string>();
  for (const s of scenarios) {
    const headers = { ...s.headers, ...extraHeaders };
    const lines = [
      `-- ${s.name}: written by bench/wrk.ts`,
      `wrk.method = ${lua(s.method)}`,
      `wrk.path = ${lua(s.path)}`,
      ...Object.entries(headers).map(([k, v]) => `wrk.headers[${lua(k)}] = ${lua(v)}`),
      ...(s.body !== undefined ? [`wrk.body = ${lua(s.body)}`] : []),
    ];
    const file = path.join(dir, `${s.id}.lua`);
    writeFileSync(file, lines.join('\n') + '\n');
    scripts.set(s.id, file);
  }
  return scripts;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function latencyMs(out: string, pct: string): number {
  const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
  return m ? Number(m[1]) * (UNIT_MS[m[2] as string] ?? NaN) : NaN;
}

/** Parse wrk's summary (with --latency). */
export function parseWrk(out: string): WrkRun {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!total) throw new Error(`unexpected wrk output:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1, 5).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    requests: Number(total[1]),
    durationS: (Number(total[2]) * (UNIT_MS[total[3] as string] ?? NaN)) / 1000,
    errors: non2xx + socketErrors,
    latencyP50Ms: latencyMs(out, '50'),
    latencyP99Ms: latencyMs(out, '99'),
  };
}

/** One wrk run: `connections` connections on one thread for `seconds`. */
export async function wrk(origin: string, script: string, seconds: number, connections: number): Promise<WrkRun> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s', '-s', script, origin];
  const out = await new Promise<string>((resolve, reject) => {
    execFile('wrk', args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  return parseWrk(out);
}

/** A wrk run with the CPU the given processes spent over it (seconds, from /proc). */
export async function wrkWithCpu(
  origin: string,
  script: string,
  seconds: number,
  connections: number,
  pids: readonly number[],
): Promise<{ run: WrkRun; cpuS: number[] }> {
  const before = pids.map((pid) => procCpuSeconds(pid) ?? NaN);
  const run = await wrk(origin, script, seconds, connections);
  const cpuS = pids.map((pid, i) => (procCpuSeconds(pid) ?? NaN) - (before[i] as number));
  return { run, cpuS };
}

export interface WrkTarget {
  name: string;
  origin: string;
  pid: number;
}

/** One target's share of an interleaved wrk scenario. */
export interface WrkResult {
  scenario: string;
  target: string;
  requests: number;
  durationS: number;
  rps: number;
  errors: number;
  /** The target process's CPU µs per request over all its slices. */
  cpuUsPerReq: number;
  /** Each slice's own CPU µs per request (the spread a noisy host gives). */
  sliceCpuUsPerReq: number[];
  latencyP50Ms: number;
  latencyP99Ms: number;
}

export interface WrkOptions {
  slices: number;
  sliceS: number;
  warmupS: number;
  connections: number;
}

/**
 * The targets take turns under wrk, in slices whose order rotates every slice, after one
 * unmeasured warm-up run each: a shared host that slows down for a while meets every target alike.
 */
export async function interleavedWrk(
  scenario: Scenario,
  script: string,
  targets: readonly WrkTarget[],
  o: WrkOptions,
  log: (msg: string) => void,
): Promise<WrkResult[]> {
  for (const t of targets) await wrk(t.origin, script, o.warmupS, o.connections);
  const acc = targets.map(() => ({ requests: 0, durationS: 0, errors: 0, cpuS: 0, slices: [] as number[], p50: [] as number[], p99: [] as number[] }));
  for (let slice = 0; slice < o.slices; slice++) {
    for (let j = 0; j < targets.length; j++) {
      const i = (j + slice) % targets.length;
      const t = targets[i] as WrkTarget;
      const { run, cpuS } = await wrkWithCpu(t.origin, script, o.sliceS, o.connections, [t.pid]);
      const a = acc[i] as (typeof acc)[number];
      a.requests += run.requests;
      a.durationS += run.durationS;
      a.errors += run.errors;
      a.cpuS += cpuS[0] as number;
      a.slices.push(((cpuS[0] as number) * 1e6) / Math.max(1, run.requests));
      a.p50.push(run.latencyP50Ms);
      a.p99.push(run.latencyP99Ms);
    }
    log(`  [${scenario.name} | wrk] slice ${slice + 1}/${o.slices} done`);
  }
  return targets.map((t, i) => {
    const a = acc[i] as (typeof acc)[number];
    return {
      scenario: scenario.id,
      target: t.name,
      requests: a.requests,
      durationS: a.durationS,
      rps: a.requests / a.durationS,
      errors: a.errors,
      cpuUsPerReq: (a.cpuS * 1e6) / Math.max(1, a.requests),
      sliceCpuUsPerReq: a.slices,
      latencyP50Ms: medianOf(a.p50),
      latencyP99Ms: medianOf(a.p99),
    };
  });
}

/**
 * The median over rounds of each round's ratio to bare (slice i of every target runs in round i,
 * seconds apart): a host slowed for a few seconds meets one round's targets alike, so this figure
 * moves less with such episodes than the ratio of the sums.
 */
export function roundRatio(r: WrkResult, bare: WrkResult): number {
  const ratios = r.sliceCpuUsPerReq.map((cpu, i) => cpu / (bare.sliceCpuUsPerReq[i] ?? NaN));
  return medianOf(ratios);
}

export function medianOf(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The wrk table: req/s, CPU µs per request of the gateway process, and both against bare. */
export function wrkTable(results: readonly WrkResult[], scenarioName: (id: string) => string): string {
  const rows: string[][] = [['scenario', 'target', 'req/s', 'cpu µs/req', 'slices µs/req', 'cpu × bare', 'median round × bare', 'req/s × bare', 'p50 ms', 'p99 ms', 'errors']];
  for (const r of results) {
    const bare = results.find((b) => b.scenario === r.scenario && b.target === 'bare');
    const lo = Math.min(...r.sliceCpuUsPerReq);
    const hi = Math.max(...r.sliceCpuUsPerReq);
    rows.push([
      scenarioName(r.scenario),
      r.target,
      r.rps.toFixed(0),
      r.cpuUsPerReq.toFixed(1),
      `${lo.toFixed(0)}–${hi.toFixed(0)}`,
      bare ? (r.cpuUsPerReq / bare.cpuUsPerReq).toFixed(2) : '-',
      bare ? roundRatio(r, bare).toFixed(2) : '-',
      bare ? (r.rps / bare.rps).toFixed(2) : '-',
      r.latencyP50Ms.toFixed(2),
      r.latencyP99Ms.toFixed(2),
      String(r.errors),
    ]);
  }
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  '))
    .join('\n');
}
