/**
 * `npx tsx bench/failover.ts [--requests 1000]`: the latency one failover adds. Two in-process
 * gateways over local fake upstreams, the same sequential chat requests through each:
 *   direct:   a pool of one healthy upstream;
 *   failover: a pool whose preferred upstream answers 503 (ejection off), so every request is
 *             answered by the second upstream after one failed attempt.
 * Prints p50 / p99 of both and their difference (the cost of one failed attempt + failover).
 */
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { buildApp } from '../src/app.js';
import { configFromObject } from '../src/config/load.js';
import { startFakeUpstream, type FakeUpstream } from '../test/helpers/fake-upstream.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '1000' } } });
const REQUESTS = Number(values.requests);
const KEY = 'tg-bench-failover-0123456789';
const BODY = JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hello' }], max_tokens: 16 });

async function gateway(upstreams: { id: string; url: string; weight: number }[]): Promise<{ url: string; close: () => Promise<void> }> {
  const config = configFromObject({
    upstreams,
    retry: { max_attempts: 2 },
    outlier_detection: { consecutive_failures: 0 },
    keys: [{ id: 'bench', key: KEY, tier: 'tier-5' }],
  });
  const app = await buildApp({ config, upstreamUrl: 'http://127.0.0.1:9/v1', upstreamApiKey: 'sk-bench', logLevel: 'warn', logStream: new Writable({ write: (_c, _e, cb) => cb() }) });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1/chat/completions`, close: () => app.close() };
}

async function measure(url: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < REQUESTS + 100; i++) {
    const start = performance.now();
    const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: BODY });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    // The first 100 warm up connections and the JIT.
    if (i >= 100) times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b);
}

const pct = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

const failing: FakeUpstream = await startFakeUpstream({ record: false });
const healthy: FakeUpstream = await startFakeUpstream({ record: false });
failing.always({ status: 503 });
const direct = await gateway([{ id: 'healthy', url: healthy.url, weight: 1 }]);
const failover = await gateway([
  { id: 'failing', url: failing.url, weight: 100 },
  { id: 'healthy', url: healthy.url, weight: 1 },
]);
// Interleaved rounds, so both see the same machine load.
const results = { direct: [] as number[], failover: [] as number[] };
for (let round = 0; round < 3; round++) {
  results.direct.push(...(await measure(direct.url)));
  results.failover.push(...(await measure(failover.url)));
}
results.direct.sort((a, b) => a - b);
results.failover.sort((a, b) => a - b);
const row = (name: string, sorted: number[]) => `${name.padEnd(9)} p50 ${pct(sorted, 50).toFixed(3)} ms  p99 ${pct(sorted, 99).toFixed(3)} ms`;
process.stdout.write(`${row('direct', results.direct)}\n${row('failover', results.failover)}\n`);
process.stdout.write(`added by one failover: p50 ${(pct(results.failover, 50) - pct(results.direct, 50)).toFixed(3)} ms, p99 ${(pct(results.failover, 99) - pct(results.direct, 99)).toFixed(3)} ms (${REQUESTS * 3} requests each)\n`);
await direct.close();
await failover.close();
await failing.close();
await healthy.close();
