/**
 * Soak: tollgate with its limiter in Redis under a fixed rate of mixed traffic for SOAK_MINUTES
 * (default 10): chat answers, 20-chunk streams, cache hits, 429s, budget refusals, clients that
 * leave mid-stream and upstream errors. The gateway samples itself every 10 s (bench/soak-probe.ts:
 * RSS, heap after a forced full GC, event-loop delay, open handles).
 *
 *   npm run soak                                 # build + 10 minutes
 *   SOAK_MINUTES=2 SOAK_RATE=50 npx tsx bench/soak.ts
 *
 * Fails (exit 1) when the heap after GC grows by more than SOAK_MAX_HEAP_GROWTH_MB (default 4)
 * from minute 2 (a fifth of shorter runs) to the end, when the event-loop delay's p99 over the run
 * passes SOAK_MAX_ELD_P99_MS (default 20; the gateway's own delay, less the time its thread waited
 * for a CPU, so a shared host's other work does not count; the wall-clock figure is shown too), when a kind of traffic never met its expected answer,
 * or when more than 0.1% of answers were not what their kind expects.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { getFreePort, installCleanupHandlers, niceSession, startChild, stopAll } from './processes.js';
import { medianOf } from './wrk.js';
import { ROOT, startRedis, startUpstream } from './steady.js';

const env = (name: string, dflt: number): number => {
  const value = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`invalid ${name}: ${process.env[name]}`);
  return value;
};
const MINUTES = env('SOAK_MINUTES', 10);
const RATE = env('SOAK_RATE', 100);
const SAMPLE_S = env('SOAK_SAMPLE_S', 10);
const MAX_HEAP_GROWTH_MB = env('SOAK_MAX_HEAP_GROWTH_MB', 4);
const MAX_ELD_P99_MS = env('SOAK_MAX_ELD_P99_MS', 20);
/**
 * The gateway, its Redis and the fake upstream run at this nice value (root only; 0: as is). In
 * production they have their cores to themselves; on a shared host, other work would otherwise
 * show up as the gateway's event-loop delay and as Redis timeouts (503s).
 */
const NICE = Number(process.env.SOAK_NICE ?? -10);
const OUT = path.resolve(ROOT, process.env.SOAK_OUT ?? '.bench/soak.json');

const KEYS = {
  plain: `tg-soak-plain-${randomBytes(12).toString('hex')}`,
  cached: `tg-soak-cached-${randomBytes(12).toString('hex')}`,
  limited: `tg-soak-limited-${randomBytes(12).toString('hex')}`,
  broke: `tg-soak-broke-${randomBytes(12).toString('hex')}`,
};

interface Sample {
  t: number;
  rssMb: number;
  heapAfterGcMb: number;
  externalMb: number;
  eldP99Ms: number;
  eldMaxMs: number;
  eldRunP99Ms: number;
  /** Less the main thread's run-queue wait (bench/soak-probe.ts): the gateway's own delay. */
  ownEldP99Ms: number;
  ownEldMaxMs: number;
  ownEldRunP99Ms: number;
  handles: number;
  handleTypes: Record<string, number>;
}

/** One kind of traffic: its request, and the outcome that is right for it. */
interface Kind {
  name: string;
  key: string;
  body: string;
  headers?: Record<string, string>;
  /** Leave after the first body chunk. */
  abort?: boolean;
  expected: string;
}

const chat = (content: string, stream = false): string =>
  JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content }], max_tokens: 64, ...(stream ? { stream: true } : {}) });

const KINDS: Record<string, Kind> = {
  chat: { name: 'chat', key: KEYS.plain, body: chat('soak'), expected: '200' },
  stream: { name: 'stream', key: KEYS.plain, body: chat('soak stream', true), headers: { 'x-fake-chunks': '20' }, expected: '200 [DONE]' },
  cacheHit: { name: 'cache hit', key: KEYS.cached, body: chat('soak cached'), expected: '200 hit' },
  rateLimited: { name: '429 rate limit', key: KEYS.limited, body: chat('soak limited'), expected: '429 rate_limit_exceeded' },
  budget: { name: '429 budget', key: KEYS.broke, body: chat('soak broke'), expected: '429 insufficient_quota' },
  abort: {
    name: 'client abort',
    key: KEYS.plain,
    body: chat('soak abort', true),
    headers: { 'x-fake-chunks': '20', 'x-fake-chunk-delay-ms': '20' },
    abort: true,
    expected: 'aborted',
  },
  upstreamError: { name: 'upstream 500', key: KEYS.plain, body: chat('soak error'), headers: { 'x-fake-status': '500' }, expected: '500' },
};
/** 20 slots a cycle: 40% chat, 20% streams, 15% cache hits, 10% 429s, 5% each of the rest. */
const MIX: Kind[] = [
  ...Array<Kind>(8).fill(KINDS.chat as Kind),
  ...Array<Kind>(4).fill(KINDS.stream as Kind),
  ...Array<Kind>(3).fill(KINDS.cacheHit as Kind),
  ...Array<Kind>(2).fill(KINDS.rateLimited as Kind),
  KINDS.budget as Kind,
  KINDS.abort as Kind,
  KINDS.upstreamError as Kind,
];

/** What one request came to, as a short label compared with its kind's `expected`. */
async function send(pool: Pool, kind: Kind): Promise<string> {
  const controller = new AbortController();
  try {
    const res = await pool.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${kind.key}`, ...kind.headers },
      body: kind.body,
      signal: controller.signal,
    });
    let text = '';
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (kind.abort) {
        controller.abort();
        return 'aborted';
      }
      if (text.length < 4096) text += chunk.toString('utf8');
      else text = text.slice(-64) + chunk.toString('utf8');
    }
    if (res.statusCode === 200) {
      if (text.includes('data: [DONE]')) return '200 [DONE]';
      return res.headers['x-tollgate-cache'] === 'hit' ? '200 hit' : '200';
    }
    const code = /"code":\s*"([a-z_]+)"/.exec(text)?.[1];
    return code && res.statusCode !== 500 ? `${res.statusCode} ${code}` : String(res.statusCode);
  } catch (err) {
    if (kind.abort && controller.signal.aborted) return 'aborted';
    return `error ${(err as Error & { code?: string }).code ?? (err as Error).message}`;
  }
}

/** Requests on a fixed timetable (open loop) until `endAt`; tallies outcomes per kind. */
async function drive(origin: string, endAt: number, tally: Map<string, Map<string, number>>): Promise<void> {
  const pool = new Pool(origin, { connections: 256, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  let i = 0;
  try {
    while (performance.now() < endAt) {
      while (t0 + (i * 1000) / RATE <= performance.now()) {
        const kind = MIX[i++ % MIX.length] as Kind;
        const p = send(pool, kind).then((outcome) => {
          const counts = tally.get(kind.name) ?? new Map<string, number>();
          counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
          tally.set(kind.name, counts);
          inflight.delete(p);
        });
        inflight.add(p);
      }
      await sleep(Math.max(1, t0 + (i * 1000) / RATE - performance.now()));
    }
    await Promise.all(inflight);
  } finally {
    await pool.close();
  }
}

function readSamples(file: string): Sample[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Sample);
}

/** The median heap after GC of the samples within one sample period of `t`. */
function heapAround(samples: readonly Sample[], t: number): number {
  return medianOf(samples.filter((s) => Math.abs(s.t - t) <= SAMPLE_S * 1.01).map((s) => s.heapAfterGcMb));
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const server = path.join(ROOT, 'dist/server.js');
  if (!existsSync(server)) throw new Error('dist/server.js not found: run `npm run build` first (npm run soak does)');
  const samplesFile = path.join(tmpdir(), `tollgate-soak-${process.pid}-${Date.now()}.jsonl`);
  const redis = await startRedis();
  const upstream = await startUpstream();
  const niced = NICE !== 0 && process.getuid?.() === 0;
  for (const pid of [redis.child.pid, upstream.child.pid]) niceSession(pid, NICE);
  const port = await getFreePort();
  const node = [process.execPath, '--expose-gc', '--import', 'tsx', '--import', path.join(ROOT, 'bench/soak-probe.ts'), server];
  const nice = niced ? ['nice', '-n', String(NICE)] : [];
  const [command, ...args] = [...nice, ...node] as [string, ...string[]];
  const gateway = await startChild({
    name: 'tollgate',
    command,
    args,
    cwd: ROOT,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      TOLLGATE_CONFIG: path.join(ROOT, 'bench/soak.bench.yaml'),
      TOLLGATE_UPSTREAM_URL: upstream.url,
      REDIS_URL: redis.url,
      OPENAI_API_KEY: 'sk-soak-upstream',
      SOAK_KEY_PLAIN: KEYS.plain,
      SOAK_KEY_CACHED: KEYS.cached,
      SOAK_KEY_LIMITED: KEYS.limited,
      SOAK_KEY_BROKE: KEYS.broke,
      SOAK_SAMPLES_FILE: samplesFile,
      SOAK_SAMPLE_MS: String(SAMPLE_S * 1000),
      LOG_LEVEL: 'info',
      NODE_ENV: 'production',
    },
    stdout: 'ignore',
    ready: { httpGet: `http://127.0.0.1:${port}/healthz` },
  });
  niceSession(gateway.pid, NICE);
  const log = (msg: string): void => void process.stderr.write(msg + '\n');
  log(
    `soak: ${MINUTES} min at ${RATE} req/s against tollgate (pid ${gateway.pid}${nice.length ? `, nice ${NICE}` : ''}) ` +
      `with Redis at ${redis.url}; host load average ${os.loadavg()[0]?.toFixed(1)}`,
  );

  const tally = new Map<string, Map<string, number>>();
  const endAt = performance.now() + MINUTES * 60_000;
  let printed = 0;
  const progress = setInterval(() => {
    const samples = readSamples(samplesFile);
    for (const s of samples.slice(printed)) {
      log(`  t=${s.t.toFixed(0).padStart(4)} s  rss ${s.rssMb.toFixed(1)} MB  heap after GC ${s.heapAfterGcMb.toFixed(2)} MB  ` +
        `event-loop p99 ${s.eldP99Ms.toFixed(2)} ms, own ${s.ownEldP99Ms.toFixed(2)} ms (max ${s.ownEldMaxMs.toFixed(1)})  handles ${s.handles}  host load ${os.loadavg()[0]?.toFixed(1)}`);
    }
    printed = samples.length;
    if (gateway.exited()) log(`tollgate exited: ${gateway.exitInfo() ?? '?'}`);
  }, SAMPLE_S * 1000);
  try {
    await drive(`http://127.0.0.1:${port}`, endAt, tally);
  } finally {
    clearInterval(progress);
  }
  // The last sample period ends after the load: wait for it so minute 10 is measured.
  await sleep(SAMPLE_S * 1000 + 500);
  if (gateway.exited()) throw new Error(`tollgate died during the soak (${gateway.exitInfo() ?? '?'})\n${gateway.outputTail()}`);
  const samples = readSamples(samplesFile).filter((s) => s.t <= MINUTES * 60 + 1);
  report(samples, tally);
}

function report(samples: readonly Sample[], tally: Map<string, Map<string, number>>): void {
  const baselineS = MINUTES >= 4 ? 120 : (MINUTES * 60) / 5;
  const last = samples[samples.length - 1];
  const base = heapAround(samples, baselineS);
  const end = last ? heapAround(samples, last.t) : NaN;
  const growth = end - base;
  const eldRunP99 = last?.ownEldRunP99Ms ?? NaN;
  const total = [...tally.values()].reduce((n, counts) => n + [...counts.values()].reduce((a, b) => a + b, 0), 0);
  let unexpected = 0;
  const failures: string[] = [];
  const lines = ['', 'traffic (kind: outcomes):'];
  for (const kind of Object.values(KINDS)) {
    const counts = tally.get(kind.name) ?? new Map<string, number>();
    const parts = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([outcome, n]) => `${n}× ${outcome}`);
    lines.push(`  ${kind.name.padEnd(15)} ${parts.join(', ')}`);
    if (!counts.has(kind.expected)) failures.push(`${kind.name}: never answered ${kind.expected}`);
    for (const [outcome, n] of counts) if (outcome !== kind.expected && !isFirstOfItsKind(kind, outcome)) unexpected += n;
  }
  const heaps = samples.map((s) => s.heapAfterGcMb);
  const rss = samples.map((s) => s.rssMb);
  lines.push(
    '',
    `requests: ${total} in ${MINUTES} min (${(total / MINUTES / 60).toFixed(1)}/s); unexpected outcomes: ${unexpected}`,
    `heap after GC: ${base.toFixed(2)} MB at ${baselineS.toFixed(0)} s → ${end.toFixed(2)} MB at the end ` +
      `(${growth >= 0 ? '+' : ''}${growth.toFixed(2)} MB; limit +${MAX_HEAP_GROWTH_MB} MB); range ${Math.min(...heaps).toFixed(2)}–${Math.max(...heaps).toFixed(2)} MB`,
    `RSS: ${Math.min(...rss).toFixed(1)}–${Math.max(...rss).toFixed(1)} MB (end ${last?.rssMb.toFixed(1) ?? '-'} MB)`,
    `event-loop delay, the gateway's own (less run-queue wait): p99 over the run ${eldRunP99.toFixed(2)} ms (limit ${MAX_ELD_P99_MS} ms); ` +
      `windows' p99 ${Math.min(...samples.map((s) => s.ownEldP99Ms)).toFixed(2)}–${Math.max(...samples.map((s) => s.ownEldP99Ms)).toFixed(2)} ms, ` +
      `max ${Math.max(...samples.map((s) => s.ownEldMaxMs)).toFixed(1)} ms`,
    `event-loop delay, wall clock (with the host's other work): p99 over the run ${(last?.eldRunP99Ms ?? NaN).toFixed(2)} ms; ` +
      `windows' p99 ${Math.min(...samples.map((s) => s.eldP99Ms)).toFixed(2)}–${Math.max(...samples.map((s) => s.eldP99Ms)).toFixed(2)} ms, ` +
      `max ${Math.max(...samples.map((s) => s.eldMaxMs)).toFixed(1)} ms`,
    `host load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (1, 5, 15 min; ${os.cpus().length} cores)`,
    `open handles: ${Math.min(...samples.map((s) => s.handles))}–${Math.max(...samples.map((s) => s.handles))} ` +
      `(end: ${JSON.stringify(last?.handleTypes ?? {})})`,
  );
  if (!(growth <= MAX_HEAP_GROWTH_MB)) failures.push(`heap after GC grew ${growth.toFixed(2)} MB (limit ${MAX_HEAP_GROWTH_MB} MB)`);
  if (!(eldRunP99 <= MAX_ELD_P99_MS)) failures.push(`event-loop delay p99 ${eldRunP99.toFixed(2)} ms (limit ${MAX_ELD_P99_MS} ms)`);
  if (unexpected > total / 1000) failures.push(`${unexpected} unexpected outcomes (more than 0.1%)`);
  lines.push('', failures.length ? `SOAK FAILED:\n  ${failures.join('\n  ')}` : 'soak passed');
  process.stdout.write(lines.join('\n') + '\n');
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify({ minutes: MINUTES, rate: RATE, nice: NICE, loadavg: os.loadavg(), baselineS, heapGrowthMb: growth, eldRunP99Ms: eldRunP99, tally: Object.fromEntries([...tally].map(([k, v]) => [k, Object.fromEntries(v)])), samples, failures }, null, 2) + '\n');
  if (failures.length) process.exitCode = 1;
}

/**
 * The limited and broke keys are admitted once before they refuse (one request a minute, a
 * budget the first answer uses up), and the cached request's first answer is a miss: those
 * answers are right too.
 */
function isFirstOfItsKind(kind: Kind, outcome: string): boolean {
  return outcome === '200' && (kind === KINDS.rateLimited || kind === KINDS.budget || kind === KINDS.cacheHit);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`\nsoak failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
