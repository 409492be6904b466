/**
 * The garbage collector's share of a request: young-generation collections (scavenges) under the
 * benchmark's load, from V8's own trace (--trace-gc-nvp), with the bytes allocated and the bytes
 * promoted to the old generation per request. Promoted bytes are what later costs full
 * collections; they are a steadier figure than timings on a noisy host.
 *
 *   npx tsx bench/gc.ts [bare|tollgate|tollgate-redis] ...
 *
 * Each target serves BENCH_GC_WARMUP (default 8000) then BENCH_GC_REQUESTS (default 20000)
 * requests of the `chat` scenario, 32 at a time; only the second part is counted.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool, request } from 'undici';
import { getFreePort, startChild, type Child } from './processes.js';
import { SCENARIOS } from './scenarios.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const WARMUP = Number(process.env.BENCH_GC_WARMUP ?? 8000);
const REQUESTS = Number(process.env.BENCH_GC_REQUESTS ?? 20000);
const CONCURRENCY = 32;
const CLIENT_KEY = 'sk-bench-gc';

async function measure(target: string, upstreamUrl: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-gc-'));
  const trace = path.join(dir, 'trace.log');
  const port = await getFreePort();
  let redis: Child | undefined;
  const env: Record<string, string> = { PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: upstreamUrl };
  if (target === 'tollgate-redis') {
    const redisPort = await getFreePort();
    redis = await startChild({ name: 'redis-server', command: 'redis-server', args: ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], cwd: ROOT, env: {}, ready: { line: /Ready to accept connections/ } });
    env.REDIS_URL = `redis://127.0.0.1:${redisPort}`;
  }
  const args = target === 'bare' ? ['--trace-gc-nvp', '--import', 'tsx', 'bench/bare-forwarder.ts'] : ['--trace-gc-nvp', 'dist/server.js'];
  // The trace and tollgate's log lines share stdout: both go to a file, read once the run is over.
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', openSync(trace, 'w'), 'inherit'],
    env: {
      ...process.env,
      ...env,
      TOLLGATE_CONFIG: path.join(ROOT, 'bench/tollgate.bench.yaml'),
      TOLLGATE_UPSTREAM_URL: upstreamUrl,
      OPENAI_API_KEY: 'sk-bench-upstream',
      BENCH_CLIENT_KEY: CLIENT_KEY,
      LOG_LEVEL: 'info',
      NODE_ENV: 'production',
    },
  });
  try {
    const origin = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      // Any answer will do (the bare forwarder has no /healthz: it answers 404).
      const ok = await request(`${origin}/healthz`).then((r) => r.body.dump().then(() => true), () => false);
      if (ok) break;
      if (i > 300) throw new Error(`${target} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await drive(origin, WARMUP);
    const before = readFileSync(trace, 'utf8').split('\n').length;
    await drive(origin, REQUESTS);
    const lines = readFileSync(trace, 'utf8').split('\n').slice(before - 1);
    const field = (line: string, name: string): number => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
    const scavenges = lines.filter((line) => /\bgc=s\b/.test(line));
    const full = lines.filter((line) => /\bgc=(mc|ms|mmc)\b/.test(line));
    const per = (total: number): string => (total / REQUESTS).toFixed(1);
    console.log(
      `${target.padEnd(15)} scavenges ${String(scavenges.length).padStart(4)}, pause ${per(sum(scavenges.map((l) => field(l, 'pause'))) * 1000).padStart(5)} µs/req` +
        `   allocated ${per(sum(scavenges.map((l) => field(l, 'allocated')))).padStart(8)} B/req` +
        `   promoted ${per(sum(scavenges.map((l) => field(l, 'promoted')))).padStart(7)} B/req` +
        `   full collections ${full.length}, pause ${sum(full.map((l) => field(l, 'pause'))).toFixed(0)} ms`,
    );
  } finally {
    child.kill('SIGKILL');
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function drive(origin: string, count: number): Promise<void> {
  const scenario = SCENARIOS.find((s) => s.id === 'chat');
  if (!scenario) throw new Error('no chat scenario');
  const pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1 });
  const headers = { ...scenario.headers, authorization: `Bearer ${CLIENT_KEY}` };
  let left = count;
  const worker = async (): Promise<void> => {
    while (left-- > 0) {
      const res = await pool.request({ method: 'POST', path: scenario.path, headers, body: scenario.body });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await pool.close();
}

const targets = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['bare', 'tollgate', 'tollgate-redis'];
for (const target of targets) {
  if (!['bare', 'tollgate', 'tollgate-redis'].includes(target)) throw new Error(`unknown target ${target}`);
}
if (targets.some((t) => t !== 'bare') && !existsSync(path.join(ROOT, 'dist/server.js'))) throw new Error('run `npm run build` first');
const upstream = await startChild({
  name: 'mock-upstream',
  command: process.execPath,
  args: ['--import', 'tsx', 'test/helpers/mock-upstream.ts'],
  cwd: ROOT,
  env: { PORT: String(await getFreePort()), HOST: '127.0.0.1', MOCK_UPSTREAM_RECORD: '0' },
  ready: { line: /listening on (https?:\/\/\S+)/ },
});
try {
  const upstreamUrl = (upstream.readyMatch?.[1] ?? '').replace(/\/+$/, '');
  console.log(`chat non-stream: garbage collection over ${REQUESTS} requests after ${WARMUP} warm-up requests`);
  for (const target of targets) await measure(target, upstreamUrl);
} finally {
  await upstream.stop();
}
