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
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { getFreePort, type Child } from './processes.js';
import { driveChat, ROOT, startRedis, startUpstream, targetsFromArgs } from './steady.js';

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
    const started = await startRedis();
    redis = started.child;
    env.REDIS_URL = started.url;
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
    await driveChat(origin, WARMUP, CONCURRENCY, CLIENT_KEY);
    const before = readFileSync(trace, 'utf8').split('\n').length;
    await driveChat(origin, REQUESTS, CONCURRENCY, CLIENT_KEY);
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

const targets = targetsFromArgs(process.argv.slice(2));
const upstream = await startUpstream();
try {
  console.log(`chat non-stream: garbage collection over ${REQUESTS} requests after ${WARMUP} warm-up requests`);
  for (const target of targets) await measure(target, upstream.url);
} finally {
  await upstream.child.stop();
}
