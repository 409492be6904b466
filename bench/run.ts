/**
 * tollgate benchmark: the same load against
 *   upstream  – the fake upstream directly,
 *   bare      – bench/bare-forwarder.ts (fastify + undici, nothing else),
 *   tollgate  – node dist/server.js,
 *   tollgate-redis – the same with its limiter in a local redis-server,
 * all at the default configuration (info log line, metrics on).
 *
 * First the headline table (bench/wrk.ts): wrk as the client, the targets interleaved, each
 * target's req/s and its own process's CPU µs per request (/proc), and both against bare. Then
 * the undici load generator's modes in interleaved rounds, reporting the median of rounds.
 *
 *   npm run bench                                   # build + full run (~4 min)
 *   BENCH_MODES=wrk npm run bench                   # the wrk table only (~1.5 min)
 *   BENCH_DURATION_S=2 BENCH_ROUNDS=1 npm run bench # quick run
 *   npx tsx bench/run.ts --targets upstream,bare    # without tollgate
 *   npx tsx bench/run.ts --help
 *
 * Full results are written to .bench/latest.json.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { runClosedLoop, runFixedRate, runInterleaved, probe, type RunResult, type Scenario } from './load.js';
import {
  getFreePort,
  indent,
  niceSession,
  installCleanupHandlers,
  procCpuSeconds,
  startChild,
  stopAll,
  type Child,
} from './processes.js';
import { SCENARIOS } from './scenarios.js';
import { startRedis } from './steady.js';
import { benchAdmissions, type AdmissionResult } from './admissions.js';
import { ensureWrk, interleavedWrk, writeScripts, wrkTable, type WrkResult } from './wrk.js';
import { runScaleOut, scaleReport, type ScaleResult } from './scale.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `wrk`: the headline table (bench/wrk.ts); the others use the undici load generator (bench/load.ts). */
type Mode = 'wrk' | 'throughput' | 'fixed-rate';
const ALL_MODES: Mode[] = ['wrk', 'throughput', 'fixed-rate'];
type UndiciMode = Exclude<Mode, 'wrk'>;

// ---------------------------------------------------------------- config ---

interface Config {
  targets: string[];
  scenarios: string[];
  /** The undici modes; `wrk` is the flag below. */
  modes: UndiciMode[];
  /** The wrk table (bench/wrk.ts): slices per target, each slice's seconds, unmeasured warm-up. */
  wrk: boolean;
  wrkSlices: number;
  wrkSliceS: number;
  wrkWarmupS: number;
  /** Scale-out: instance counts on one Redis (empty: skip) and each measured window's seconds. */
  instances: number[];
  scaleS: number;
  /** Measured seconds per (scenario, mode, target), split evenly over rounds. */
  durationS: number;
  rounds: number;
  /** Warm-up before the first round of each (scenario, mode, target). */
  warmupS: number;
  /** Warm-up before later rounds (connections are new each run). */
  rewarmS: number;
  concurrency: number;
  /** Interleaved throughput: slices per target (0: skip) and each slice's measured length. */
  slices: number;
  sliceS: number;
  rate: number;
  upstreamScript: string;
  out: string;
}

/** BENCH_NICE (default -10; 0: off): the nice value of the bench's and its targets' sessions (root only). */
const BENCH_NICE = Number(process.env.BENCH_NICE ?? -10);

/** Unmeasured start of every interleaved slice: the target wakes, the previous one's tail ends. */
const SLICE_SETTLE_S = 0.25;

const HELP = `usage: tsx bench/run.ts [options]

options (env var in brackets):
  --targets LIST       comma list of upstream,bare,tollgate,tollgate-redis,tollgate-nometrics,
                       base,base-redis                        [BENCH_TARGETS] (default: all but
                       tollgate-nometrics and the base targets)
  --scenarios LIST     comma list of ${SCENARIOS.map((s) => s.id).join(',')}   [BENCH_SCENARIOS] (default: all)
  --modes LIST         comma list of wrk,throughput,fixed-rate [BENCH_MODES] (default: all)
                       wrk: the headline table, wrk as the client and each target's CPU µs per
                       request from /proc (needs wrk: installed with apt-get when root)
  --wrk-slices N       wrk: slices per target, order rotating [BENCH_WRK_SLICES] (default 6)
  --wrk-slice-s S      wrk: seconds per slice                 [BENCH_WRK_SLICE_S] (default 2)
  --wrk-warmup S       wrk: unmeasured run per target first   [BENCH_WRK_WARMUP_S] (default 2)
  --instances LIST     scale-out: for each N in the comma list, N tollgate instances on one
                       redis-server, each under its own wrk (chat non-stream): aggregate
                       req/s, Redis CPU per request and a sizing table [BENCH_INSTANCES]
                       (default: none, e.g. 1,2,4)
  --scale-s S          scale-out: measured seconds per N      [BENCH_SCALE_S] (default 6)
  --duration S         measured seconds per scenario×mode×target, split over the rounds
                                                              [BENCH_DURATION_S] (default 8)
  --rounds N           interleaved rounds; the median is reported [BENCH_ROUNDS] (default 3)
  --warmup S           warm-up before the first round         [BENCH_WARMUP_S] (default 2)
  --rewarm S           warm-up before later rounds            [BENCH_REWARM_S] (default 0.5)
  --concurrency C      connections in throughput mode         [BENCH_CONCURRENCY] (default 32)
  --slices N           interleaved throughput: slices per target, order rotating each
                       slice (0: skip)                        [BENCH_SLICES] (default 10)
  --slice-s S          measured seconds per slice, after ${SLICE_SETTLE_S} s unmeasured
                                                              [BENCH_SLICE_S] (default 1)
  --rate R             requests/s in fixed-rate mode          [BENCH_RATE] (default 200)
  --upstream-script F  fake upstream entry point              [BENCH_UPSTREAM_SCRIPT]
                       (default test/helpers/mock-upstream.ts)
  --out FILE           JSON results                           [BENCH_OUT] (default .bench/latest.json)

environment only:
  BENCH_NICE           nice value of the bench's session (wrk) and of each target's, as root
                       (default -10; 0: off): on a shared host, the measured processes get the
                       CPU as on a host of their own
  BENCH_BASE_ROOT      the checkout the base and base-redis targets run (its dist/, built):
                       another build beside this one in the same run, e.g. before and after a change
  BENCH_NODE_ARGS      extra node flags for the bare forwarder and tollgate, e.g.
                       "--cpu-prof --cpu-prof-dir=.bench/prof" to profile them under load
`;

function parseConfig(argv: string[]): Config {
  const { values } = parseArgs({
    args: argv,
    options: {
      targets: { type: 'string' },
      scenarios: { type: 'string' },
      modes: { type: 'string' },
      'wrk-slices': { type: 'string' },
      'wrk-slice-s': { type: 'string' },
      'wrk-warmup': { type: 'string' },
      instances: { type: 'string' },
      'scale-s': { type: 'string' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      rewarm: { type: 'string' },
      concurrency: { type: 'string' },
      slices: { type: 'string' },
      'slice-s': { type: 'string' },
      rate: { type: 'string' },
      'upstream-script': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const env = process.env;
  const list = (v: string | undefined, dflt: string[]): string[] =>
    v ? v.split(',').map((s) => s.trim()).filter(Boolean) : dflt;
  const num = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`invalid ${name}: ${v}`);
    return n;
  };

  const targets = list(values.targets ?? env.BENCH_TARGETS, TARGETS.filter((t) => !t.optional).map((t) => t.name));
  for (const t of targets) if (!TARGETS.some((d) => d.name === t)) throw new Error(`unknown target: ${t}`);
  const scenarios = list(values.scenarios ?? env.BENCH_SCENARIOS, SCENARIOS.map((s) => s.id));
  for (const s of scenarios) if (!SCENARIOS.some((d) => d.id === s)) throw new Error(`unknown scenario: ${s}`);
  const modes = list(values.modes ?? env.BENCH_MODES, ALL_MODES) as Mode[];
  for (const m of modes) if (!ALL_MODES.includes(m)) throw new Error(`unknown mode: ${m}`);

  return {
    targets,
    scenarios,
    modes: modes.filter((m): m is UndiciMode => m !== 'wrk'),
    wrk: modes.includes('wrk'),
    wrkSlices: Math.round(num('wrk-slices', values['wrk-slices'] ?? env.BENCH_WRK_SLICES, 6, 1)),
    wrkSliceS: Math.round(num('wrk-slice-s', values['wrk-slice-s'] ?? env.BENCH_WRK_SLICE_S, 2, 1)),
    wrkWarmupS: Math.round(num('wrk-warmup', values['wrk-warmup'] ?? env.BENCH_WRK_WARMUP_S, 2, 1)),
    instances: list(values.instances ?? env.BENCH_INSTANCES, []).map((n) => Math.round(num('instances', n, 1, 1))),
    scaleS: Math.round(num('scale-s', values['scale-s'] ?? env.BENCH_SCALE_S, 6, 1)),
    durationS: num('duration', values.duration ?? env.BENCH_DURATION_S, 8, 0.1),
    rounds: Math.round(num('rounds', values.rounds ?? env.BENCH_ROUNDS, 3, 1)),
    warmupS: num('warmup', values.warmup ?? env.BENCH_WARMUP_S, 2, 0),
    rewarmS: num('rewarm', values.rewarm ?? env.BENCH_REWARM_S, 0.5, 0),
    concurrency: Math.round(num('concurrency', values.concurrency ?? env.BENCH_CONCURRENCY, 32, 1)),
    slices: Math.round(num('slices', values.slices ?? env.BENCH_SLICES, 10, 0)),
    sliceS: num('slice-s', values['slice-s'] ?? env.BENCH_SLICE_S, 1, 0.1),
    rate: num('rate', values.rate ?? env.BENCH_RATE, 200, 1),
    upstreamScript: path.resolve(
      ROOT,
      values['upstream-script'] ?? env.BENCH_UPSTREAM_SCRIPT ?? 'test/helpers/mock-upstream.ts',
    ),
    out: path.resolve(ROOT, values.out ?? env.BENCH_OUT ?? '.bench/latest.json'),
  };
}

// --------------------------------------------------------------- targets ---

interface Context {
  config: Config;
  clientKey: string;
  /** Fake upstream base URL including /v1 (set once the upstream is up). */
  upstreamUrl?: string;
  /** The redis-server of the tollgate-redis target. */
  redisUrl?: string;
  redisChild?: Child;
}

interface RunningTarget {
  name: string;
  /** Origin the load generator talks to, e.g. http://127.0.0.1:40123 */
  origin: string;
  child: Child;
}

interface TargetDef {
  name: string;
  /** Only when named in --targets. */
  optional?: boolean;
  start(ctx: Context): Promise<RunningTarget>;
}

/** BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=.bench/prof": extra node flags for bare and tollgate (profiling). */
function nodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
}

/** node + tsx loader in-process (no tsx CLI wrapper process). */
function tsxCommand(script: string): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', script] };
}

/**
 * Targets are started in this order; each later one may use ctx.upstreamUrl.
 * To benchmark a tollgate variant (e.g. Redis limiter), add an entry with
 * its own config file and reference it from a scenario's `targets`.
 */
const TARGETS: TargetDef[] = [
  {
    name: 'upstream',
    async start(ctx) {
      const script = ctx.config.upstreamScript;
      if (!existsSync(script)) {
        throw new Error(`fake upstream not found: ${script} (use --upstream-script / BENCH_UPSTREAM_SCRIPT)`);
      }
      const port = await getFreePort();
      const child = await startChild({
        name: 'mock-upstream',
        ...tsxCommand(script),
        cwd: ROOT,
        env: { PORT: String(port), HOST: '127.0.0.1', MOCK_UPSTREAM_RECORD: '0' },
        ready: { line: /listening on (https?:\/\/\S+)/ },
      });
      const url = child.readyMatch?.[1] ?? `http://127.0.0.1:${port}/v1`;
      ctx.upstreamUrl = url.replace(/\/+$/, '');
      return { name: 'upstream', origin: new URL(url).origin, child };
    },
  },
  {
    name: 'bare',
    async start(ctx) {
      const port = await getFreePort();
      const child = await startChild({
        name: 'bare-forwarder',
        command: process.execPath,
        args: [...nodeArgs(), '--import', 'tsx', path.join(ROOT, 'bench/bare-forwarder.ts')],
        cwd: ROOT,
        env: { PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: requireUpstream(ctx) },
        ready: { line: /bare-forwarder listening on (http:\/\/\S+)/ },
      });
      return { name: 'bare', origin: `http://127.0.0.1:${port}`, child };
    },
  },
  {
    name: 'tollgate',
    start: (ctx) => startTollgate(ctx, 'tollgate', {}),
  },
  {
    // The same tollgate with metrics off (config metrics.enabled: false): what counting costs.
    name: 'tollgate-nometrics',
    optional: true,
    start: (ctx) => startTollgate(ctx, 'tollgate-nometrics', { BENCH_METRICS: 'false' }),
  },
  {
    // The same tollgate with its limiter in Redis (a local redis-server started for the run).
    name: 'tollgate-redis',
    async start(ctx) {
      const redis = await startRedis();
      ctx.redisUrl = redis.url;
      ctx.redisChild = redis.child;
      return startTollgate(ctx, 'tollgate-redis', { REDIS_URL: ctx.redisUrl });
    },
  },
  {
    // Another checkout's build (BENCH_BASE_ROOT, e.g. the main branch), in the same run: before/after.
    name: 'base',
    optional: true,
    start: (ctx) => startTollgate(ctx, 'base', {}, baseRoot()),
  },
  {
    name: 'base-redis',
    optional: true,
    async start(ctx) {
      if (!ctx.redisUrl) {
        const redis = await startRedis();
        ctx.redisUrl = redis.url;
        ctx.redisChild = redis.child;
      }
      return startTollgate(ctx, 'base-redis', { REDIS_URL: ctx.redisUrl }, baseRoot());
    },
  },
];

function baseRoot(): string {
  const root = process.env.BENCH_BASE_ROOT;
  if (!root) throw new Error('the base targets need BENCH_BASE_ROOT: a checkout with a build (npm run build)');
  return path.resolve(root);
}

/** `node dist/server.js` with the bench config; logging stays on, as in production. */
async function startTollgate(ctx: Context, name: string, extraEnv: Record<string, string>, root = ROOT): Promise<RunningTarget> {
  const server = path.join(root, 'dist/server.js');
  if (!existsSync(server)) {
    throw new Error(`${server} not found: run \`npm run build\` first, or use --targets upstream,bare`);
  }
  const port = await getFreePort();
  const child = await startChild({
    name,
    command: process.execPath,
    args: [...nodeArgs(), server],
    cwd: root,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      TOLLGATE_CONFIG: path.join(ROOT, 'bench/tollgate.bench.yaml'),
      TOLLGATE_UPSTREAM_URL: requireUpstream(ctx),
      OPENAI_API_KEY: 'sk-bench-upstream',
      BENCH_CLIENT_KEY: ctx.clientKey,
      LOG_LEVEL: 'info',
      NODE_ENV: 'production',
      ...extraEnv,
    },
    // Log lines are written (as in production) to /dev/null: reading them here would spend the
    // load generator's CPU on tollgate's logs and understate tollgate's throughput.
    stdout: 'ignore',
    ready: { httpGet: `http://127.0.0.1:${port}/healthz` },
  });
  return { name, origin: `http://127.0.0.1:${port}`, child };
}

function requireUpstream(ctx: Context): string {
  if (!ctx.upstreamUrl) throw new Error('the upstream must be started first');
  return ctx.upstreamUrl;
}

// ----------------------------------------------------------- measurement ---

interface Measurement {
  scenario: string;
  mode: Mode;
  target: string;
  round: number;
  warmupS: number;
  result: RunResult;
  /** CPU seconds used in the measured window, per process name. */
  cpuS: Record<string, number>;
  /** CPU µs per completed request of the target's own process. */
  targetCpuUsPerReq: number | undefined;
}

interface Summary {
  scenario: string;
  scenarioName: string;
  mode: Mode;
  target: string;
  rounds: number;
  rps: number;
  p50: number;
  p99: number;
  ttfbP50: number;
  cpuUsPerReq: number | undefined;
  errors: number;
  /** Fixed-rate: load-generator send lag, ms (median over rounds). */
  sendLagP50?: number;
  sendLagP99?: number;
  /** (max − min) / median over rounds of rps (throughput) or p99 (fixed-rate), %. */
  spreadPct: number;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function spread(xs: number[]): number {
  const m = median(xs);
  if (xs.length < 2 || !(m > 0)) return 0;
  return ((Math.max(...xs) - Math.min(...xs)) / m) * 100;
}

function cpuSnapshot(running: RunningTarget[]): Record<string, number | undefined> {
  const snap: Record<string, number | undefined> = {};
  for (const t of running) snap[t.name] = procCpuSeconds(t.child.pid);
  const self = process.cpuUsage();
  snap['loadgen'] = (self.user + self.system) / 1e6;
  return snap;
}

/** A target that died mid-run makes every later figure meaningless: stop with its last output. */
function assertAlive(running: RunningTarget[]): void {
  for (const t of running) {
    if (t.child.exited()) {
      throw new Error(
        `${t.child.name} died during the run (${t.child.exitInfo() ?? '?'})\n` +
          indent(t.child.outputTail().trim(), '    '),
      );
    }
  }
}

async function measure(
  cfg: Config,
  ctx: Context,
  scenario: Scenario,
  mode: Mode,
  target: RunningTarget,
  running: RunningTarget[],
  round: number,
): Promise<Measurement> {
  const warmupS = round === 0 ? cfg.warmupS : Math.min(cfg.rewarmS, cfg.warmupS);
  const durationMs = (cfg.durationS / cfg.rounds) * 1000;
  let before: Record<string, number | undefined> = {};
  let after: Record<string, number | undefined> = {};
  const hooks = {
    windowStart: () => (before = cpuSnapshot(running)),
    windowEnd: () => (after = cpuSnapshot(running)),
  };
  const common = {
    origin: target.origin,
    scenario,
    extraHeaders: { authorization: `Bearer ${ctx.clientKey}` },
    warmupMs: warmupS * 1000,
    durationMs,
    hooks,
  };
  const result =
    mode === 'throughput'
      ? await runClosedLoop({ ...common, concurrency: cfg.concurrency })
      : await runFixedRate({ ...common, rate: cfg.rate });

  assertAlive(running);
  const cpuS: Record<string, number> = {};
  for (const [name, b] of Object.entries(before)) {
    const a = after[name];
    if (a !== undefined && b !== undefined) cpuS[name] = a - b;
  }
  const n = result.ok + result.errors;
  const own = cpuS[target.name];
  return {
    scenario: scenario.id,
    mode,
    target: target.name,
    round,
    warmupS,
    result,
    cpuS,
    targetCpuUsPerReq: own !== undefined && n > 0 ? (own * 1e6) / n : undefined,
  };
}

function summarizeAll(ms: Measurement[], cfg: Config): Summary[] {
  const out: Summary[] = [];
  for (const sid of cfg.scenarios) {
    const scenario = SCENARIOS.find((s) => s.id === sid)!;
    for (const mode of cfg.modes) {
      for (const target of cfg.targets) {
        const rs = ms.filter((m) => m.scenario === sid && m.mode === mode && m.target === target);
        if (rs.length === 0) continue;
        const cpu = rs.map((m) => m.targetCpuUsPerReq).filter((x): x is number => x !== undefined);
        out.push({
          scenario: sid,
          scenarioName: scenario.name,
          mode,
          target,
          rounds: rs.length,
          rps: median(rs.map((m) => m.result.rps)),
          p50: median(rs.map((m) => m.result.latency.p50)),
          p99: median(rs.map((m) => m.result.latency.p99)),
          ttfbP50: median(rs.map((m) => m.result.ttfb.p50)),
          cpuUsPerReq: cpu.length ? median(cpu) : undefined,
          errors: rs.reduce((a, m) => a + m.result.errors, 0),
          spreadPct: spread(rs.map((m) => (mode === 'throughput' ? m.result.rps : m.result.latency.p99))),
          ...(mode === 'fixed-rate'
            ? {
                sendLagP50: median(rs.map((m) => m.result.sendLag?.p50 ?? NaN)),
                sendLagP99: median(rs.map((m) => m.result.sendLag?.p99 ?? NaN)),
              }
            : {}),
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- report ---

function fmt(n: number | undefined, digits: number): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

function signed(n: number): string {
  return Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(2)} ms` : 'n/a';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

interface Comparisons {
  /** `ratio`: of the medians; `perRound`: each round's own ratio (the two runs closest in time). */
  throughputRatios: { scenario: string; numerator: string; denominator: string; ratio: number; perRound: number[] }[];
  addedLatency: { scenario: string; a: string; b: string; p50Ms: number; p99Ms: number }[];
}

/** One target's share of an interleaved throughput run. */
interface Interleaved {
  scenario: string;
  target: string;
  rps: number;
  errors: number;
  errorSamples: Record<string, number>;
  cpuUsPerReq: number | undefined;
}

/**
 * Throughput with the targets taking turns in short slices (bench/load.ts runInterleaved): the
 * ratio a drifting shared host skews least, since every target meets the same host over the run.
 */
async function measureInterleaved(cfg: Config, ctx: Context, scenario: Scenario, targets: RunningTarget[]): Promise<Interleaved[]> {
  const cpu = new Map<string, number>();
  let at: number | undefined;
  const pidOf = (name: string): number => (targets.find((t) => t.name === name) as RunningTarget).child.pid;
  const results = await runInterleaved({
    targets: targets.map((t) => ({ name: t.name, origin: t.origin })),
    scenario,
    extraHeaders: { authorization: `Bearer ${ctx.clientKey}` },
    concurrency: cfg.concurrency,
    sliceMs: cfg.sliceS * 1000,
    settleMs: SLICE_SETTLE_S * 1000,
    slices: cfg.slices,
    hooks: {
      windowStart: (name) => (at = procCpuSeconds(pidOf(name))),
      windowEnd: (name) => {
        const now = procCpuSeconds(pidOf(name));
        if (at !== undefined && now !== undefined) cpu.set(name, (cpu.get(name) ?? 0) + now - at);
        at = undefined;
      },
    },
  });
  return targets.map((t) => {
    const r = results.get(t.name) as RunResult;
    const n = r.ok + r.errors;
    const used = cpu.get(t.name);
    return {
      scenario: scenario.id,
      target: t.name,
      rps: r.rps,
      errors: r.errors,
      errorSamples: r.errorSamples,
      cpuUsPerReq: used !== undefined && n > 0 ? (used * 1e6) / n : undefined,
    };
  });
}

function compare(summaries: Summary[], cfg: Config, ms: Measurement[]): Comparisons {
  const get = (sid: string, mode: Mode, target: string): Summary | undefined =>
    summaries.find((s) => s.scenario === sid && s.mode === mode && s.target === target);
  const has = (t: string): boolean => cfg.targets.includes(t);
  const pairs: [string, string][] = [];
  if (has('tollgate') && has('bare')) pairs.push(['tollgate', 'bare']);
  if (has('tollgate-redis') && has('bare')) pairs.push(['tollgate-redis', 'bare']);
  if (has('tollgate') && has('upstream')) pairs.push(['tollgate', 'upstream']);
  if (has('tollgate') && has('tollgate-nometrics')) pairs.push(['tollgate', 'tollgate-nometrics']);
  if (has('bare') && has('upstream')) pairs.push(['bare', 'upstream']);
  const res: Comparisons = { throughputRatios: [], addedLatency: [] };
  for (const sid of cfg.scenarios) {
    for (const [a, b] of pairs) {
      const ta = get(sid, 'throughput', a);
      const tb = get(sid, 'throughput', b);
      if (ta && tb) {
        const rps = (target: string, round: number): number | undefined =>
          ms.find((m) => m.scenario === sid && m.mode === 'throughput' && m.target === target && m.round === round)?.result.rps;
        const perRound: number[] = [];
        for (let round = 0; round < cfg.rounds; round++) {
          const ra = rps(a, round);
          const rb = rps(b, round);
          if (ra !== undefined && rb) perRound.push(ra / rb);
        }
        res.throughputRatios.push({ scenario: sid, numerator: a, denominator: b, ratio: ta.rps / tb.rps, perRound });
      }
      const fa = get(sid, 'fixed-rate', a);
      const fb = get(sid, 'fixed-rate', b);
      if (fa && fb) res.addedLatency.push({ scenario: sid, a, b, p50Ms: fa.p50 - fb.p50, p99Ms: fa.p99 - fb.p99 });
    }
  }
  return res;
}

function report(summaries: Summary[], cmp: Comparisons, cfg: Config, ms: Measurement[], interleaved: Interleaved[]): string {
  const label: Record<string, string> = {
    upstream: 'upstream',
    bare: 'bare forwarder',
    tollgate: 'tollgate',
    'tollgate-redis': 'tollgate (Redis limiter)',
    'tollgate-nometrics': 'tollgate (metrics off)',
  };
  const name = (sid: string): string => SCENARIOS.find((s) => s.id === sid)?.name ?? sid;
  const rows: string[][] = [
    ['scenario', 'mode', 'target', 'req/s', 'p50 ms', 'p99 ms', 'ttfb p50', 'cpu µs/req', 'errors', 'spread %'],
  ];
  for (const s of summaries) {
    rows.push([
      s.scenarioName,
      s.mode === 'fixed-rate' ? `${cfg.rate}/s` : 'throughput',
      s.target,
      fmt(s.rps, 0),
      fmt(s.p50, 2),
      fmt(s.p99, 2),
      fmt(s.ttfbP50, 2),
      fmt(s.cpuUsPerReq, 0),
      String(s.errors),
      fmt(s.spreadPct, 0),
    ]);
  }
  const lines = [table(rows), ''];
  const pairsSeen = [...new Set(cmp.throughputRatios.map((r) => `${r.numerator}/${r.denominator}`))];
  for (const pair of pairsSeen) {
    const [a, b] = pair.split('/') as [string, string];
    const items = cmp.throughputRatios
      .filter((r) => r.numerator === a && r.denominator === b)
      .map((r) => {
        const low = Math.min(...r.perRound);
        const high = Math.max(...r.perRound);
        const rounds = r.perRound.length > 1 ? ` (rounds ${low.toFixed(2)}–${high.toFixed(2)})` : '';
        return `${name(r.scenario)} throughput ${r.ratio.toFixed(2)}x${rounds}`;
      });
    lines.push(`ratios (${label[a]} / ${label[b]}): ${items.join(', ')}`);
  }
  for (const sid of cfg.scenarios) {
    const runs = interleaved.filter((r) => r.scenario === sid);
    if (runs.length === 0) continue;
    const base = runs.find((r) => r.target === 'bare');
    const parts = runs.map(
      (r) =>
        `${r.target} ${fmt(r.rps, 0)} req/s, ${fmt(r.cpuUsPerReq, 0)} µs/req` +
        (base && r !== base && base.rps > 0 ? ` (${(r.rps / base.rps).toFixed(2)}x bare)` : '') +
        (r.errors ? `, ${r.errors} errors ${JSON.stringify(r.errorSamples)}` : ''),
    );
    lines.push(`interleaved throughput, ${name(sid)}: ${parts.join(' | ')}`);
  }
  const latPairs = [...new Set(cmp.addedLatency.map((r) => `${r.a}/${r.b}`))];
  for (const sid of cfg.scenarios) {
    const parts: string[] = [];
    for (const pair of latPairs) {
      const [a, b] = pair.split('/') as [string, string];
      const r = cmp.addedLatency.find((x) => x.scenario === sid && x.a === a && x.b === b);
      if (r) parts.push(`(${a} − ${b}) p50 ${signed(r.p50Ms)}, p99 ${signed(r.p99Ms)}`);
    }
    if (parts.length) lines.push(`added latency at ${cfg.rate} req/s, ${name(sid)}: ${parts.join('; ')}`);
  }
  const lag = summaries.filter((s) => s.mode === 'fixed-rate');
  if (lag.length) {
    lines.push(
      `fixed-rate send lag (timer + load-generator delay, part of every fixed-rate latency): ` +
        `p50 ${fmt(median(lag.map((s) => s.sendLagP50 ?? NaN)), 2)} ms, ` +
        `p99 ${fmt(median(lag.map((s) => s.sendLagP99 ?? NaN)), 2)} ms`,
    );
  }
  const failing = summaries.filter((s) => s.errors > 0);
  if (failing.length) {
    lines.push('', 'WARNING: some requests failed; results of these rows are not comparable:');
    for (const f of failing) {
      const samples: Record<string, number> = {};
      for (const m of ms) {
        if (m.scenario !== f.scenario || m.mode !== f.mode || m.target !== f.target) continue;
        for (const [k, v] of Object.entries(m.result.errorSamples)) samples[k] = (samples[k] ?? 0) + v;
      }
      const top = Object.entries(samples)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([k, v]) => `${v}× ${k}`);
      lines.push(`  ${f.scenarioName} / ${f.mode} / ${f.target}: ${f.errors} errors: ${top.join(' | ')}`);
    }
  }
  lines.push(
    '',
    `medians of ${cfg.rounds} interleaved round(s), ${fmt(cfg.durationS / cfg.rounds, 2)} s measured per run; ` +
      `throughput: ${cfg.concurrency} connections; fixed-rate latency is measured from the scheduled send time.`,
    'cpu µs/req: CPU time of the target process itself (upstream row: the fake upstream alone) per request; ' +
      'spread %: (max − min) / median across rounds (req/s for throughput, p99 for fixed-rate); ' +
      'ratios: of the medians, then the lowest and highest of each round\'s own ratio.',
    ...(interleaved.length
      ? [
          `interleaved throughput: the targets take turns, ${cfg.slices} slices of ${fmt(cfg.sliceS, 2)} s each ` +
            `(after ${SLICE_SETTLE_S} s unmeasured), ${cfg.concurrency} connections, the order rotating every slice: ` +
            'a shared host that slows down meets every target alike, so these ratios move least between runs.',
        ]
      : []),
  );
  return lines.join('\n');
}

/** The wrk table's runs: per scenario, the proxies (not the fake upstream) interleaved. */
async function wrkTableRun(
  cfg: Config,
  ctx: Context,
  scenarios: Scenario[],
  measured: RunningTarget[],
  log: (msg: string) => void,
): Promise<WrkResult[]> {
  ensureWrk(log);
  const scripts = writeScripts(scenarios, { authorization: `Bearer ${ctx.clientKey}` });
  const results: WrkResult[] = [];
  for (const scenario of scenarios) {
    const targets = measured
      .filter((t) => t.name !== 'upstream' && (!scenario.targets || scenario.targets.includes(t.name)))
      .map((t) => ({ name: t.name, origin: t.origin, pid: t.child.pid }));
    if (targets.length === 0) continue;
    const opts = { slices: cfg.wrkSlices, sliceS: cfg.wrkSliceS, warmupS: cfg.wrkWarmupS, connections: cfg.concurrency };
    results.push(...(await interleavedWrk(scenario, scripts.get(scenario.id) as string, targets, opts, log)));
    assertAlive(measured);
  }
  return results;
}

/** N tollgate instances on one redis-server, for each N of --instances (the chat scenario). */
async function scaleOut(cfg: Config, ctx: Context, log: (msg: string) => void): Promise<ScaleResult[]> {
  ensureWrk(log);
  const chat = SCENARIOS.find((s) => s.id === 'chat') as Scenario;
  const script = writeScripts([chat], { authorization: `Bearer ${ctx.clientKey}` }).get('chat') as string;
  return runScaleOut({
    instances: cfg.instances,
    script,
    seconds: cfg.scaleS,
    warmupS: cfg.wrkWarmupS,
    connections: cfg.concurrency,
    start: async (redisUrl, name) => {
      const started = await startTollgate(ctx, name, { REDIS_URL: redisUrl });
      niceSession(started.child.pid, BENCH_NICE);
      return started;
    },
    nice: (pid) => niceSession(pid, BENCH_NICE),
    log,
  });
}

// ------------------------------------------------------------------ main ---

async function main(): Promise<void> {
  installCleanupHandlers();
  const cfg = parseConfig(process.argv.slice(2));
  const scenarios = cfg.scenarios.map((id) => SCENARIOS.find((s) => s.id === id)!);
  const ctx: Context = { config: cfg, clientKey: `tg-bench-${randomBytes(16).toString('hex')}` };
  const log = (msg: string): void => void process.stderr.write(msg + '\n');
  // The load generators (wrk runs in this process's session) and every target: see niceSession.
  niceSession(process.pid, BENCH_NICE);

  // The fake upstream is always needed (the proxies forward to it).
  const toStart = TARGETS.filter((t) => t.name === 'upstream' || cfg.targets.includes(t.name));
  const running: RunningTarget[] = [];
  for (const def of toStart) {
    const t = await def.start(ctx);
    niceSession(t.child.pid, BENCH_NICE);
    if ((t.name === 'tollgate-redis' || t.name === 'base-redis') && ctx.redisChild) niceSession(ctx.redisChild.pid, BENCH_NICE);
    running.push(t);
    log(`started ${t.child.name} (pid ${t.child.pid}) at ${t.origin}`);
  }
  const measured = running.filter((t) => cfg.targets.includes(t.name));

  // Sanity check every (scenario, target) before spending minutes measuring.
  for (const scenario of scenarios) {
    for (const t of measured) {
      if (scenario.targets && !scenario.targets.includes(t.name)) continue;
      const r = await probe(t.origin, scenario, { authorization: `Bearer ${ctx.clientKey}` });
      if (!r.ok) {
        throw new Error(
          `probe failed: ${scenario.name} → ${t.name}: ${r.error ?? '?'}\n` +
            indent(t.child.outputTail().trim().split('\n').slice(-20).join('\n'), '    '),
        );
      }
      log(`probe ok: ${scenario.name.padEnd(16)} → ${t.name.padEnd(8)} ${r.bytes} bytes in ${r.ms.toFixed(1)} ms`);
    }
  }

  // The headline: wrk as the client, every target's own CPU per request.
  const loadBefore = os.loadavg()[0] ?? NaN;
  const wrkResults = cfg.wrk ? await wrkTableRun(cfg, ctx, scenarios, measured, log) : [];
  if (wrkResults.length) {
    process.stdout.write(
      '\n' +
        wrkTable(wrkResults, (id) => SCENARIOS.find((s) => s.id === id)?.name ?? id) +
        `\nwrk -t1 -c${cfg.concurrency}, targets interleaved: ${cfg.wrkSlices} slices of ${cfg.wrkSliceS} s each, the order rotating ` +
        `every slice, after a ${cfg.wrkWarmupS} s unmeasured run each. cpu µs/req: utime+stime of the target process ` +
        '(/proc/<pid>/stat) over its slices per request answered; slices µs/req: the lowest and highest slice; median round × bare: the median of each round\'s ratio to bare\'s slice in the same round. ' +
        `Host load average (1 min) ${loadBefore.toFixed(1)} before, ${os.loadavg()[0]?.toFixed(1)} after, on ${os.cpus().length} cores.\n\n`,
    );
  }

  const scale = cfg.instances.length ? await scaleOut(cfg, ctx, log) : [];
  if (scale.length) process.stdout.write('\n' + scaleReport(scale) + '\n\n');

  const runsPerRound = scenarios.reduce(
    (n, s) => n + measured.filter((t) => !s.targets || s.targets.includes(t.name)).length,
    0,
  ) * cfg.modes.length;
  const estS =
    runsPerRound * (cfg.durationS + cfg.warmupS + (cfg.rounds - 1) * Math.min(cfg.rewarmS, cfg.warmupS)) +
    runsPerRound * cfg.rounds * 0.3 +
    (cfg.modes.includes('throughput') ? (runsPerRound / cfg.modes.length) * cfg.slices * (cfg.sliceS + SLICE_SETTLE_S + 0.05) : 0);
  if (runsPerRound) log(
    `measuring: ${runsPerRound} runs × ${cfg.rounds} round(s), ${(cfg.durationS / cfg.rounds).toFixed(2)} s each ` +
      `(+ warm-up); estimated ${Math.ceil(estS)} s`,
  );

  const startedAt = new Date().toISOString();
  const measurements: Measurement[] = [];
  for (const scenario of scenarios) {
    const targets = measured.filter((t) => !scenario.targets || scenario.targets.includes(t.name));
    for (const mode of cfg.modes) {
      for (let round = 0; round < cfg.rounds; round++) {
        // Rotate the order each round so no target is always first/last.
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const target of order) {
          const m = await measure(cfg, ctx, scenario, mode, target, running, round);
          measurements.push(m);
          const r = m.result;
          log(
            `  [${scenario.name} | ${mode} | round ${round + 1}/${cfg.rounds}] ${target.name.padEnd(8)} ` +
              `${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.latency.p50.toFixed(2)} ms  ` +
              `p99 ${r.latency.p99.toFixed(2)} ms  errors ${r.errors}` +
              (r.errors ? `  ${JSON.stringify(r.errorSamples)}` : ''),
          );
          await sleep(250);
        }
      }
    }
  }

  // The same targets again, taking turns in short slices: the throughput ratios to quote.
  const interleaved: Interleaved[] = [];
  if (cfg.modes.includes('throughput') && cfg.slices > 0) {
    for (const scenario of scenarios) {
      const targets = measured.filter((t) => !scenario.targets || scenario.targets.includes(t.name));
      if (targets.length < 2) continue;
      const runs = await measureInterleaved(cfg, ctx, scenario, targets);
      interleaved.push(...runs);
      log(`  [${scenario.name} | interleaved] ` + runs.map((r) => `${r.target} ${r.rps.toFixed(0)} req/s`).join(', '));
      assertAlive(running);
    }
  }

  const summaries = summarizeAll(measurements, cfg);
  const cmp = compare(summaries, cfg, measurements);
  if (cfg.modes.length) process.stdout.write('\n' + report(summaries, cmp, cfg, measurements, interleaved) + '\n');

  // The limiter alone: admissions per second against the local Redis (and in memory).
  let admissions: AdmissionResult[] = [];
  if (ctx.redisUrl) {
    admissions = await benchAdmissions(ctx.redisUrl, Math.max(1, Math.round(cfg.durationS / 2)));
    for (const a of admissions) {
      process.stdout.write(
        `limiter admissions/s (${a.store}, 64 concurrent callers, 100 keys, reserve + settle): ${fmt(a.admissionsPerSecond, 0)} admitted/s, ${fmt(a.settlesPerSecond, 0)} settled/s\n`,
      );
    }
  }

  mkdirSync(path.dirname(cfg.out), { recursive: true });
  const json = {
    startedAt,
    finishedAt: new Date().toISOString(),
    config: cfg,
    environment: {
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadavg: os.loadavg(),
    },
    targets: Object.fromEntries(running.map((t) => [t.name, { origin: t.origin, pid: t.child.pid }])),
    scenarios,
    summary: summaries,
    comparisons: cmp,
    wrk: wrkResults,
    scaleOut: scale,
    interleaved,
    admissions,
    measurements,
  };
  writeFileSync(cfg.out, JSON.stringify(json, null, 2) + '\n');
  log(`\nfull results: ${path.relative(process.cwd(), cfg.out) || cfg.out}`);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  process.stderr.write(`\nbench failed: ${(err as Error).message}\n`);
  exitCode = 1;
} finally {
  await stopAll();
}
process.exit(exitCode);
