/**
 * Where a gateway's CPU per request goes: the target runs under `node --cpu-prof` while wrk drives
 * one scenario at it, then the profile's samples taken during the measured run are summed per
 * function (self time) and per module, in µs per request.
 *
 *   npm run build && npx tsx bench/profile.ts [--target tollgate|tollgate-redis|bare]
 *       [--scenario chat|chat-stream] [--seconds 10] [--root DIR] [--top 40] [--out DIR]
 *
 * --root: the checkout whose dist/ is profiled (default: this one), e.g. a build of the main
 * branch beside a change. The .cpuprofile is kept in --out (default .bench/prof) for Chrome's
 * DevTools (Performance tab → load profile) or speedscope.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { getFreePort, procCpuSeconds, startChild, stopAll, type Child } from './processes.js';
import { SCENARIOS } from './scenarios.js';
import { ROOT, startRedis, startUpstream } from './steady.js';
import { ensureWrk, wrk, writeScripts } from './wrk.js';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'tollgate' },
    scenario: { type: 'string', default: 'chat' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    root: { type: 'string', default: ROOT },
    top: { type: 'string', default: '40' },
    /** Only the CPU by thread, without the profiler (whose own thread and sampling cost CPU too). */
    'no-profile': { type: 'boolean', default: false },
    /**
     * Instead of the CPU profile: V8's sampling heap profile of what is still live when the
     * process stops (allocated while serving and kept: what is promoted to the old generation).
     */
    heap: { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(ROOT, '.bench/prof') },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(`usage: npx tsx bench/profile.ts [options] (after npm run build)

  --target T        bare, tollgate or tollgate-redis (default tollgate)
  --scenario S      ${SCENARIOS.map((s) => s.id).join(', ')} (default chat)
  --seconds N       measured wrk run (default 10), after --warmup N unmeasured seconds (default 3)
  --connections C   wrk connections (default 32)
  --root DIR        the checkout whose dist/ is profiled (default this one)
  --top N           rows per list (default 40)
  --out DIR         where the profiles are kept (default .bench/prof)
  --no-profile      only the CPU per request and by thread, without the profiler
  --heap            V8's sampling heap profile instead: what is still live at exit, by allocation site`);
  process.exit(0);
}

const scenario = SCENARIOS.find((s) => s.id === values.scenario);
if (!scenario) throw new Error(`unknown scenario ${values.scenario} (${SCENARIOS.map((s) => s.id).join(', ')})`);
const target = values.target;
const root = path.resolve(values.root);
const seconds = Number(values.seconds);
const outDir = path.resolve(values.out, `${target}-${scenario.id}-${Date.now()}`);
mkdirSync(outDir, { recursive: true });
ensureWrk((m) => console.error(m));

const clientKey = `tg-bench-${randomBytes(16).toString('hex')}`;
const upstream = await startUpstream();
let child: Child;
const port = await getFreePort();
const profiling = !values['no-profile'];
const heap = values.heap;
/** BENCH_NODE_ARGS: extra node flags for the target, e.g. "--trace-deopt" (its stdout is kept in --out). */
const extraArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const profArgs = heap
  ? ['--heap-prof', `--heap-prof-dir=${outDir}`, '--heap-prof-interval=4096']
  : profiling
    ? ['--cpu-prof', `--cpu-prof-dir=${outDir}`, '--cpu-prof-interval=100']
    : [];
try {
  if (target === 'bare') {
    child = await startChild({
      name: 'bare-forwarder',
      command: process.execPath,
      args: [...profArgs, ...extraArgs, '--import', 'tsx', path.join(ROOT, 'bench/bare-forwarder.ts')],
      cwd: ROOT,
      env: { PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: upstream.url },
      ready: { line: /bare-forwarder listening on/ },
    });
  } else if (target === 'tollgate' || target === 'tollgate-redis') {
    const redis = target === 'tollgate-redis' ? await startRedis() : undefined;
    child = await startChild({
      name: target,
      command: process.execPath,
      args: [...profArgs, ...extraArgs, path.join(root, 'dist/server.js')],
      cwd: root,
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        TOLLGATE_CONFIG: path.join(ROOT, 'bench/tollgate.bench.yaml'),
        TOLLGATE_UPSTREAM_URL: upstream.url,
        OPENAI_API_KEY: 'sk-bench-upstream',
        BENCH_CLIENT_KEY: clientKey,
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
        NODE_ENV: 'production',
        ...(redis ? { REDIS_URL: redis.url } : {}),
      },
      stdout: 'ignore',
      ready: { httpGet: `http://127.0.0.1:${port}/healthz` },
    });
  } else {
    throw new Error(`unknown target ${target} (bare, tollgate, tollgate-redis)`);
  }

  const script = writeScripts([scenario], { authorization: `Bearer ${clientKey}` }).get(scenario.id) as string;
  const origin = `http://127.0.0.1:${port}`;
  await wrk(origin, script, Number(values.warmup), Number(values.connections));
  const io0 = procCounters(child.pid);
  const cpu0 = procCpuSeconds(child.pid) ?? NaN;
  const threads0 = threadCpu(child.pid);
  const t0 = performance.now();
  const run = await wrk(origin, script, seconds, Number(values.connections));
  const t1 = performance.now();
  const cpuS = (procCpuSeconds(child.pid) ?? NaN) - cpu0;
  const threads1 = threadCpu(child.pid);
  const io1 = procCounters(child.pid);
  if (run.errors > 0) console.error(`warning: ${run.errors} errors of ${run.requests} requests`);
  await child.stop(10_000);
  const t2 = performance.now();
  await stopAll();

  console.log(`${target} | ${scenario.name}: ${run.requests} requests in ${seconds} s (${(run.requests / seconds).toFixed(0)} req/s)`);
  console.log(`process CPU (/proc): ${((cpuS * 1e6) / run.requests).toFixed(1)} µs/req`);
  const file = readdirSync(outDir).find((f) => f.endsWith('.cpuprofile') || f.endsWith('.heapprofile'));
  if (heap) {
    if (!file) throw new Error(`no heap profile written in ${outDir}`);
    heapReport(JSON.parse(readFileSync(path.join(outDir, file), 'utf8')) as HeapProfile, run.requests, Number(values.top));
  } else if (profiling) {
    if (!file) throw new Error(`no profile written in ${outDir}`);
    const profile = JSON.parse(readFileSync(path.join(outDir, file), 'utf8')) as CpuProfile;
    // The measured window, counted back from the profile's end (the process's exit).
    const endUs = profile.endTime;
    report(profile, endUs - (t2 - t0) * 1000, endUs - (t2 - t1) * 1000, run.requests, Number(values.top));
  }
  console.log(`\nper request (from /proc/<pid>/io and status):`);
  for (const [name, v] of io1) console.log(`  ${((v - (io0.get(name) ?? 0)) / run.requests).toFixed(2).padStart(8)}  ${name}`);
  console.log(`\nCPU by thread (µs/req, from /proc/<pid>/task):`);
  const perThread = new Map<string, number>();
  for (const [tid, t1] of threads1) {
    const before = threads0.get(tid);
    const name = tid === child.pid ? 'main' : t1.name;
    perThread.set(name, (perThread.get(name) ?? 0) + t1.cpuS - (before?.cpuS ?? 0));
  }
  for (const [name, s] of [...perThread].sort((a, b) => b[1] - a[1])) {
    if (s > 0) console.log(`  ${((s * 1e6) / run.requests).toFixed(1).padStart(8)}  ${name}`);
  }
  if (file) console.log(`\nprofile: ${path.join(outDir, file)} (${(statSync(path.join(outDir, file)).size / 1e6).toFixed(1)} MB)`);
} finally {
  await stopAll();
  await sleep(10);
}

/** Read and write system calls, bytes and context switches of a process, summed over its threads. */
function procCounters(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
      const [k, v] = line.split(':');
      if (k === 'syscr' || k === 'syscw') out.set(k === 'syscr' ? 'read syscalls' : 'write syscalls', Number(v));
    }
    let vol = 0;
    let invol = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      vol += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      invol += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    }
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const tick = 1e6 / 100; // USER_HZ: µs per clock tick
    out.set('minor page faults', Number(fields[7]));
    out.set('user CPU µs', Number(fields[11]) * tick);
    out.set('system CPU µs', Number(fields[12]) * tick);
    out.set('voluntary context switches', vol);
    out.set('involuntary context switches', invol);
  } catch {
    // the process is gone
  }
  return out;
}

interface HeapNode {
  callFrame: CpuProfileNode['callFrame'];
  selfSize: number;
  children: HeapNode[];
}
interface HeapProfile {
  head: HeapNode;
}

/**
 * Live bytes by allocation site (the allocating function and the nearest gateway function above
 * it), per request served: a site that grows with the load keeps objects past their request.
 * Startup's allocations are in it too: compare a run with `--seconds 1` to see which sites grow.
 */
function heapReport(p: HeapProfile, requests: number, top: number): void {
  const sites = new Map<string, number>();
  const walk = (n: HeapNode, stack: string[]): void => {
    const f = n.callFrame;
    const m = moduleOf(f.url);
    const here = `${f.functionName || '(anonymous)'} ${m}:${f.lineNumber + 1}`;
    const own = /^(dist|src)\//.test(m) ? [...stack, here] : stack;
    if (n.selfSize > 0) {
      const key = `${here}  <  ${own.slice(-3).reverse().join(' < ') || '-'}`;
      sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, own);
  };
  walk(p.head, []);
  const total = [...sites.values()].reduce((a, b) => a + b, 0);
  console.log(`live at exit (sampled): ${(total / 1e6).toFixed(1)} MB; by allocation site, bytes per request served:`);
  for (const [k, b] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${(b / requests).toFixed(1).padStart(9)}  ${(b / 1e3).toFixed(0).padStart(7)} kB  ${k}`);
}

/** CPU seconds of each thread of a process, by thread id, with the thread's name. */
function threadCpu(pid: number): Map<number, { name: string; cpuS: number }> {
  const out = new Map<number, { name: string; cpuS: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const cpuS = procCpuSeconds(Number(tid), `/proc/${pid}/task/${tid}/stat`);
      if (cpuS !== undefined) out.set(Number(tid), { name, cpuS });
    } catch {
      // The thread ended.
    }
  }
  return out;
}

function moduleOf(url: string): string {
  if (!url) return '(native/vm)';
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return (rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]) ?? url;
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '').replace(ROOT + '/', '');
}

function report(p: CpuProfile, fromUs: number, toUs: number, requests: number, top: number): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let t = p.startTime;
  let inWindow = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const prevT = t - (p.timeDeltas[i] ?? 0);
    const dt = Math.min(p.timeDeltas[i + 1] ?? 0, 10_000) || (t - prevT);
    self.set(p.samples[i] as number, (self.get(p.samples[i] as number) ?? 0) + dt);
    inWindow += dt;
  }
  const perReq = (us: number): string => (us / requests).toFixed(2);
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id) as CpuProfileNode;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    const m = moduleOf(n.callFrame.url);
    const key = `${name}  ${m}:${n.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  // Inclusive time of the gateway's own functions (dist/ and src/): each function once per stack.
  const incl = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = (byId.get(cur) as CpuProfileNode).callFrame;
      const m = moduleOf(f.url);
      if (!/^(dist|src)\//.test(m)) continue;
      const key = `${f.functionName || '(anonymous)'}  ${m}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  const busy = inWindow - idle;
  console.log(`main thread busy in the profile: ${perReq(busy)} µs/req`);
  console.log(`\nself time by module (µs/req):`);
  for (const [m, us] of [...mod].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${perReq(us).padStart(8)}  ${m}`);
  console.log(`\nself time by function (µs/req), top ${top}:`);
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${perReq(us).padStart(8)}  ${k}`);
  if (incl.size === 0) return;
  console.log(`\ninclusive time of the gateway's own functions (µs/req), top ${top}:`);
  for (const [k, us] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${perReq(us).padStart(8)}  ${k}`);
}
