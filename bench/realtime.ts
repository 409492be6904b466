/**
 * Realtime benchmark (not part of `npm test`): SESSIONS concurrent WebSocket sessions, each sending
 * RATE `input_audio_buffer.append` events per second (20 ms of 24 kHz pcm16 each), through
 * tollgate and through a bare `ws` relay (bench/realtime-bare.ts), to the same counting upstream
 * (bench/realtime-sink.ts), targets alternating over ROUNDS. Per target: events relayed per
 * second, the target process's CPU µs per relayed event (/proc, over the measured window only),
 * and its memory per session (RSS with the sessions open and warm, less RSS before they opened,
 * over SESSIONS).
 *
 *   npx tsx bench/realtime.ts
 *   RT_SESSIONS=200 RT_RATE=50 RT_WARM_S=5 RT_MEASURE_S=20 RT_ROUNDS=2 npx tsx bench/realtime.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { getFreePort, procCpuSeconds, startChild, stopAll, type Child } from './processes.js';

const SESSIONS = Number(process.env.RT_SESSIONS ?? 200);
const RATE = Number(process.env.RT_RATE ?? 50);
const WARM_S = Number(process.env.RT_WARM_S ?? 5);
const MEASURE_S = Number(process.env.RT_MEASURE_S ?? 20);
const ROUNDS = Number(process.env.RT_ROUNDS ?? 2);
const UPSTREAM_KEY = `sk-bench-${randomBytes(8).toString('hex')}`;
const CLIENT_KEY = `tg-bench-${randomBytes(12).toString('hex')}`;
/** 20 ms of 24 kHz mono pcm16: 960 bytes, 1280 base64 characters. */
const APPEND = JSON.stringify({ type: 'input_audio_buffer.append', audio: randomBytes(960).toString('base64') });
const tsx = ['--import', 'tsx'];

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb ?? NaN) * 1024;
}

async function sinkCount(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/count`);
  return ((await res.json()) as { frames: number }).frames;
}

async function openSessions(url: string, headers: Record<string, string>): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < SESSIONS) {
      next++;
      const ws = new WebSocket(url, { headers, perMessageDeflate: false });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      });
      ws.on('message', () => undefined);
      sockets.push(ws);
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return sockets;
}

interface Row {
  readonly target: string;
  readonly round: number;
  readonly eventsPerS: number;
  readonly cpuUsPerEvent: number;
  readonly cpuPercent: number;
  readonly kibPerSession: number;
}

async function measure(target: string, child: Child, port: number, sinkPort: number, path: string, headers: Record<string, string>, round: number): Promise<Row> {
  await sleep(1000);
  const idleRss = rssBytes(child.pid);
  const sockets = await openSessions(`ws://127.0.0.1:${port}${path}`, headers);
  // Each tick sends what is due since the start (timers fire late on a busy machine).
  let sent = 0;
  let rounds = 0;
  const start = performance.now();
  const tick = setInterval(
    () => {
      const due = Math.floor(((performance.now() - start) * RATE) / 1000);
      for (; rounds < due; rounds++) {
        for (const ws of sockets) {
          if (ws.readyState !== ws.OPEN) continue;
          ws.send(APPEND);
          sent++;
        }
      }
    },
    Math.round(1000 / RATE),
  );
  await sleep(WARM_S * 1000);
  const rss = rssBytes(child.pid);
  const cpu0 = procCpuSeconds(child.pid) ?? NaN;
  const frames0 = await sinkCount(sinkPort);
  const t0 = performance.now();
  await sleep(MEASURE_S * 1000);
  const cpu1 = procCpuSeconds(child.pid) ?? NaN;
  const frames1 = await sinkCount(sinkPort);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(tick);
  for (const ws of sockets) ws.close();
  const relayed = frames1 - frames0;
  process.stderr.write(`  ${target} round ${round}: ${relayed} events relayed in ${seconds.toFixed(1)} s (${sent} sent in all)\n`);
  return {
    target,
    round,
    eventsPerS: relayed / seconds,
    cpuUsPerEvent: ((cpu1 - cpu0) * 1e6) / Math.max(1, relayed),
    cpuPercent: ((cpu1 - cpu0) / seconds) * 100,
    kibPerSession: (rss - idleRss) / 1024 / SESSIONS,
  };
}

async function main(): Promise<void> {
  // The memory limiter: the sessions' events take no Redis call (only each session's opening does).
  delete process.env.REDIS_URL;
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-rt-'));
  const rows: Row[] = [];
  try {
    const sinkPort = await getFreePort();
    await startChild({ name: 'sink', command: process.execPath, args: [...tsx, 'bench/realtime-sink.ts'], env: { PORT: String(sinkPort) }, ready: { line: /realtime-sink listening/ } });
    const upstreamUrl = `http://127.0.0.1:${sinkPort}/v1`;
    const config = join(dir, 'tollgate.yaml');
    writeFileSync(config, `keys:\n  - id: bench\n    key: "${CLIENT_KEY}"\n    tier: tier-5\n    limits: { rpm: 100000000, tpm: 10000000000 }\n`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const target of ['bare', 'tollgate'] as const) {
        const port = await getFreePort();
        const child =
          target === 'bare'
            ? await startChild({ name: 'bare', command: process.execPath, args: [...tsx, 'bench/realtime-bare.ts'], env: { PORT: String(port), UPSTREAM_URL: upstreamUrl }, ready: { line: /realtime-bare listening/ } })
            : await startChild({
                name: 'tollgate',
                command: process.execPath,
                args: [...tsx, 'src/server.ts'],
                env: { PORT: String(port), HOST: '127.0.0.1', TOLLGATE_CONFIG: config, TOLLGATE_UPSTREAM_URL: upstreamUrl, OPENAI_API_KEY: UPSTREAM_KEY, LOG_LEVEL: 'warn' },
                ready: { httpGet: `http://127.0.0.1:${port}/healthz` },
                readyTimeoutMs: 120_000,
              });
        rows.push(await measure(target, child, port, sinkPort, '/v1/realtime?model=gpt-realtime', { authorization: `Bearer ${CLIENT_KEY}` }, round));
        await child.stop();
      }
    }
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  const bare = rows.filter((r) => r.target === 'bare');
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const bareCpu = mean(bare.map((r) => r.cpuUsPerEvent));
  process.stdout.write(`\n${SESSIONS} sessions × ${RATE} appends/s, ${WARM_S} s warm-up, ${MEASURE_S} s measured, ${ROUNDS} rounds\n\n`);
  process.stdout.write('| target | round | events/s relayed | CPU µs/event | CPU % of a core | × bare CPU/event | memory KiB/session |\n|---|---|---|---|---|---|---|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.target} | ${r.round} | ${r.eventsPerS.toFixed(0)} | ${r.cpuUsPerEvent.toFixed(1)} | ${r.cpuPercent.toFixed(0)} | ${(r.cpuUsPerEvent / bareCpu).toFixed(2)} | ${r.kibPerSession.toFixed(1)} |\n`);
  }
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench/realtime: ${err instanceof Error ? err.stack : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
