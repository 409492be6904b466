/**
 * Deterministic cost per request, for a host too noisy for timings to settle small differences:
 * the instructions a target executes per request (valgrind's callgrind counts them; the same
 * binary, inputs and load give the same count within about 0.1% on a quiet machine, about 1%
 * while other work shares it, as that changes how requests batch per event-loop turn).
 *
 *   npx tsx bench/instructions.ts [bare|tollgate|tollgate-redis] ...
 *
 * Each target runs under callgrind with instrumentation off while it starts and warms up
 * (BENCH_IR_WARMUP requests, default 8000, so the JIT has settled), then on for
 * BENCH_IR_REQUESTS measured requests (default 3000), 16 at a time, of the `chat` scenario
 * (BENCH_IR_SCENARIO=chat-stream: the stream).
 * V8 runs its garbage collector on the main thread (--single-threaded-gc), so the main thread's
 * count includes it; background threads (the JIT compiler, libuv's pool) are shown apart.
 * Instructions are not time: cache misses and system calls are not in them. Use it to compare
 * two builds or two configurations, and `npm run bench` for the figures users see.
 * Needs valgrind (apt-get install valgrind); takes about two minutes per target.
 * BENCH_IR_SIM=1 adds callgrind's cache and branch simulation (about three times slower): the
 * simulated first-level and last-level cache misses and mispredicted branches per request, and
 * from them cachegrind's rough estimate of cycles (Ir + 10 × L1 misses + 100 × LL misses + 15 ×
 * mispredicted branches). A model, not the machine; what it is for: two targets that execute as
 * many instructions can still differ in how much code and data they touch.
 * BENCH_IR_LL=size,assoc,line sets the simulated last-level cache (e.g. 1048576,8,64: one core's
 * L2, what a request can count on when the L3 is shared with other tenants).
 * BENCH_IR_TOP=N lists the N functions with the most instructions of their own per request, the
 * JavaScript ones by name (V8's perf map).
 * BENCH_TOLLGATE_ROOT=DIR measures the tollgate build of another checkout (e.g. the main branch
 * built in a directory of its own), to compare two builds under the same conditions.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getFreePort, startChild, type Child } from './processes.js';
import { driveChat, ROOT, startRedis, startUpstream, targetsFromArgs } from './steady.js';

const WARMUP = Number(process.env.BENCH_IR_WARMUP ?? 8000);
const REQUESTS = Number(process.env.BENCH_IR_REQUESTS ?? 3000);
const CONCURRENCY = 16;
const SIMULATE = process.env.BENCH_IR_SIM === '1';
/** BENCH_IR_SCENARIO: the scenario driven (default chat; chat-stream: the 20-chunk stream). */
const SCENARIO = process.env.BENCH_IR_SCENARIO ?? 'chat';
const CLIENT_KEY = 'sk-bench-instructions';
/**
 * BENCH_IR_LL=size,assoc,line (e.g. 1048576,8,64): the simulated last-level cache, instead of the
 * one valgrind reads off this CPU (its whole L3). On a host shared with other tenants the L3 is
 * theirs too; the core's own L2 is what a request can count on.
 */
const LL = process.env.BENCH_IR_LL ? [`--LL=${process.env.BENCH_IR_LL}`] : [];
/**
 * BENCH_IR_TOP=N: also the N functions of the main thread with the most instructions of their own
 * per request; JavaScript by name and place (V8's perf map, --perf-basic-prof), the rest by symbol.
 */
const TOP = Number(process.env.BENCH_IR_TOP ?? 0);
/** BENCH_IR_NODE_ARGS: further node flags for the measured target. */
const TOLLGATE_ROOT = path.resolve(process.env.BENCH_TOLLGATE_ROOT ?? ROOT);
// callgrind_control finds the process by a FIFO named after USER and HOST: both sides must agree
// (HOST is also the listen address the targets read).
const VG_ENV = { USER: 'root', LOGNAME: 'root', HOST: '127.0.0.1' };

async function measure(target: string, upstreamUrl: string): Promise<void> {
  const out = mkdtempSync(path.join(tmpdir(), 'tollgate-ir-'));
  const port = await getFreePort();
  const callgrind = ['--tool=callgrind', '--smc-check=all-non-file', '--separate-threads=yes', '--instr-atstart=no', `--callgrind-out-file=${out}/cg.%p`, ...(SIMULATE ? ['--cache-sim=yes', '--branch-sim=yes', ...LL] : [])];
  // BENCH_IR_TOP: V8 writes /tmp/perf-<pid>.map, which names the JIT's code in the callgrind output.
  const node = [process.execPath, '--single-threaded-gc', ...(TOP > 0 ? ['--perf-basic-prof'] : []), ...(process.env.BENCH_IR_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  let redis: Child | undefined;
  const env: Record<string, string> = { ...VG_ENV, PORT: String(port) };
  if (target === 'tollgate-redis') {
    const started = await startRedis();
    redis = started.child;
    env.REDIS_URL = started.url;
  }
  const child =
    target === 'bare'
      ? await startChild({ name: target, command: 'valgrind', args: [...callgrind, ...node, '--import', 'tsx', 'bench/bare-forwarder.ts'], cwd: ROOT, env: { ...env, UPSTREAM_URL: upstreamUrl }, ready: { line: /bare-forwarder listening/ }, readyTimeoutMs: 300_000 })
      : await startChild({
          name: target,
          command: 'valgrind',
          args: [...callgrind, ...node, 'dist/server.js'],
          cwd: TOLLGATE_ROOT,
          env: {
            ...env,
            // Redis calls take about 50 times longer under valgrind: a wide timeout keeps them answered.
            TOLLGATE_CONFIG: path.join(ROOT, 'bench/tollgate.bench.yaml'),
            BENCH_REDIS_TIMEOUT_MS: '30000',
            TOLLGATE_UPSTREAM_URL: upstreamUrl,
            OPENAI_API_KEY: 'sk-bench-upstream',
            BENCH_CLIENT_KEY: CLIENT_KEY,
            LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
            NODE_ENV: 'production',
          },
          stdout: 'ignore',
          ready: { httpGet: `http://127.0.0.1:${port}/healthz` },
          readyTimeoutMs: 300_000,
        });
  const control = (...args: string[]): void => {
    execFileSync('callgrind_control', [...args, String(child.pid)], { env: { ...process.env, ...VG_ENV }, stdio: 'ignore' });
  };
  try {
    const errors = await driveChat(`http://127.0.0.1:${port}`, WARMUP, CONCURRENCY, CLIENT_KEY, SCENARIO);
    control('--instr=on');
    await driveChat(`http://127.0.0.1:${port}`, 200, CONCURRENCY, CLIENT_KEY, SCENARIO);
    control('--zero');
    const measuredErrors = await driveChat(`http://127.0.0.1:${port}`, REQUESTS, CONCURRENCY, CLIENT_KEY, SCENARIO);
    control('--dump');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // One file per thread: cg.<pid>.1-01 is the main thread.
    const files = readdirSync(out)
      .filter((file) => /\.1-\d+$/.test(file))
      .sort()
      .map((file) => eventTotals(readFileSync(path.join(out, file), 'utf8')));
    const totals = files.map((events) => events.get('Ir') ?? 0);
    const main = totals[0] ?? 0;
    const all = totals.reduce((sum, value) => sum + value, 0);
    console.log(
      `${target.padEnd(15)} main thread ${Math.round(main / REQUESTS).toLocaleString('en-US').padStart(9)} instructions/request` +
        `   all threads ${Math.round(all / REQUESTS).toLocaleString('en-US').padStart(9)}` +
        (errors + measuredErrors > 0 ? `   (${errors + measuredErrors} non-200 answers!)` : ''),
    );
    if (SIMULATE && files[0]) console.log(simulated(files[0]));
    const mainFile = readdirSync(out).filter((file) => /\.1-\d+$/.test(file)).sort()[0];
    if (TOP > 0 && mainFile) console.log(topFunctions(path.join(out, mainFile), `/tmp/perf-${child.pid}.map`));
  } finally {
    await child.stop();
    await redis?.stop();
    // BENCH_IR_KEEP=1: the callgrind files stay, for callgrind_annotate (e.g. --tree=caller on malloc).
    if (process.env.BENCH_IR_KEEP === '1') console.log(`callgrind output kept in ${out}`);
    else rmSync(out, { recursive: true, force: true });
  }
}

const targets = targetsFromArgs(process.argv.slice(2));
const upstream = await startUpstream();
try {
  console.log(`${SCENARIO}: instructions per request after ${WARMUP} warm-up requests, over ${REQUESTS} requests`);
  for (const target of targets) await measure(target, upstream.url);
} finally {
  await upstream.child.stop();
}

/** The totals line of a callgrind output file, by event name (`events:` line). */
function eventTotals(text: string): Map<string, number> {
  const names = /^events: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? ['Ir'];
  const values = /^(?:summary|totals): (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
  return new Map(names.map((name, i) => [name, values[i] ?? 0]));
}

/** The main thread's simulated misses per request, and cachegrind's cycle estimate from them. */
function simulated(events: Map<string, number>): string {
  const per = (name: string): number => (events.get(name) ?? 0) / REQUESTS;
  const l1 = per('I1mr') + per('D1mr') + per('D1mw');
  const ll = per('ILmr') + per('DLmr') + per('DLmw');
  const mispredicted = per('Bcm') + per('Bim');
  const cycles = per('Ir') + 10 * l1 + 100 * ll + 15 * mispredicted;
  const f = (n: number): string => Math.round(n).toLocaleString('en-US');
  return (
    `${''.padEnd(15)} per request: I1 misses ${f(per('I1mr'))}, D1 misses ${f(per('D1mr') + per('D1mw'))}, ` +
    `LL misses ${f(ll)} (instructions ${f(per('ILmr'))}), mispredicted branches ${f(mispredicted)}; estimated cycles ${f(cycles)}`
  );
}

/** The main thread's functions by their own instructions per request, JIT code named from V8's perf map. */
function topFunctions(file: string, perfMap: string): string {
  const code: { start: number; end: number; name: string }[] = [];
  try {
    for (const line of readFileSync(perfMap, 'utf8').split('\n')) {
      const [start, size, ...name] = line.split(' ');
      if (start && size && name.length > 0) code.push({ start: parseInt(start, 16), end: parseInt(start, 16) + parseInt(size, 16), name: name.join(' ') });
    }
  } catch {
    // no map: JIT code stays an address
  }
  code.sort((a, b) => a.start - b.start);
  const named = (address: number): string | undefined => {
    let lo = 0;
    let hi = code.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const entry = code[mid] as (typeof code)[number];
      if (address < entry.start) hi = mid - 1;
      else if (address >= entry.end) lo = mid + 1;
      else return entry.name;
    }
    return undefined;
  };
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const totals = new Map<string, number>();
  for (const line of text.split('\n')) {
    const row = /^\s*([\d,]+) \(\s*[\d.]+%\)\s.*?\s(\S+:.*)$/.exec(line);
    if (!row || row[2]?.includes('PROGRAM TOTALS')) continue;
    const ir = Number((row[1] as string).replaceAll(',', ''));
    const fn = row[2] as string;
    const address = /^\?\?\?:0x([0-9a-f]+)/.exec(fn);
    const name = ((address ? named(parseInt(address[1] as string, 16)) : undefined) ?? fn.replace(/^\?\?\?:/, '')).replace(/(?:file:\/\/)?\/\S*?\/(dist|node_modules)\//, '$1/').replace(/ \[\/usr\/bin\/node\]$/, '');
    totals.set(name, (totals.get(name) ?? 0) + ir);
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP)
    .map(([name, ir]) => `${Math.round(ir / REQUESTS).toLocaleString('en-US').padStart(24)}  ${name.slice(0, 140)}`)
    .join('\n');
}
