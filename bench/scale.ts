/**
 * Scale-out: N tollgate instances sharing one redis-server, each driven by its own wrk at once.
 * Measures the aggregate throughput, the gateways' CPU per request and the Redis CPU per request
 * (one admission and its settlement; from the redis-server's /proc stat), and derives how many
 * gateway instances one Redis primary, and a Redis Cluster of M primaries, can serve.
 */
import { procCpuSeconds, type Child } from './processes.js';
import { startRedis } from './steady.js';
import { wrk, type WrkRun } from './wrk.js';

export interface Instance {
  origin: string;
  child: Child;
}

export interface ScaleOptions {
  instances: number[];
  script: string;
  seconds: number;
  warmupS: number;
  /** wrk connections per instance. */
  connections: number;
  start: (redisUrl: string, name: string) => Promise<Instance>;
  /** Called with the redis-server's pid once it runs (e.g. to nice it like the instances). */
  nice?: (pid: number) => void;
  log: (msg: string) => void;
}

export interface ScaleResult {
  instances: number;
  rps: number;
  errors: number;
  /** All gateway processes' CPU per request answered. */
  gatewayCpuUsPerReq: number;
  /** redis-server's CPU per request answered (its admission and settlement). */
  redisCpuUsPerReq: number;
  /** redis-server's share of one core over the window. */
  redisCoreShare: number;
}

/** One N: a fresh redis-server, N instances on it, N wrk runs at once over the same window. */
async function measureN(n: number, o: ScaleOptions): Promise<ScaleResult> {
  const redis = await startRedis();
  o.nice?.(redis.child.pid);
  const instances: Instance[] = [];
  try {
    for (let i = 0; i < n; i++) instances.push(await o.start(redis.url, `tollgate-scale-${i + 1}`));
    await Promise.all(instances.map((inst) => wrk(inst.origin, o.script, o.warmupS, o.connections)));
    const cpu = (): number[] => [redis.child.pid, ...instances.map((inst) => inst.child.pid)].map((pid) => procCpuSeconds(pid) ?? NaN);
    const before = cpu();
    const runs: WrkRun[] = await Promise.all(instances.map((inst) => wrk(inst.origin, o.script, o.seconds, o.connections)));
    const used = cpu().map((after, i) => after - (before[i] as number));
    const requests = runs.reduce((sum, r) => sum + r.requests, 0);
    const durationS = Math.max(...runs.map((r) => r.durationS));
    const gatewayS = used.slice(1).reduce((a, b) => a + b, 0);
    return {
      instances: n,
      rps: requests / durationS,
      errors: runs.reduce((sum, r) => sum + r.errors, 0),
      gatewayCpuUsPerReq: (gatewayS * 1e6) / requests,
      redisCpuUsPerReq: ((used[0] as number) * 1e6) / requests,
      redisCoreShare: (used[0] as number) / durationS,
    };
  } finally {
    await Promise.all(instances.map((inst) => inst.child.stop()));
    await redis.child.stop();
  }
}

export async function runScaleOut(o: ScaleOptions): Promise<ScaleResult[]> {
  const results: ScaleResult[] = [];
  for (const n of o.instances) {
    const r = await measureN(n, o);
    o.log(`  [scale-out] ${n} instance(s): ${r.rps.toFixed(0)} req/s, redis ${r.redisCpuUsPerReq.toFixed(1)} µs/req`);
    results.push(r);
  }
  return results;
}

/** Redis is one thread: a primary is sized at this share of its core, leaving room for spikes. */
const REDIS_TARGET_SHARE = 0.7;
const CLUSTER_PRIMARIES = [1, 3, 6];

export function scaleReport(results: readonly ScaleResult[]): string {
  const rows = [['instances', 'req/s (all)', 'gateway cpu µs/req', 'redis cpu µs/req', 'redis core used', 'errors']];
  for (const r of results) {
    rows.push([
      String(r.instances),
      r.rps.toFixed(0),
      r.gatewayCpuUsPerReq.toFixed(1),
      r.redisCpuUsPerReq.toFixed(2),
      `${(r.redisCoreShare * 100).toFixed(0)}%`,
      String(r.errors),
    ]);
  }
  const lines = [table(rows), ''];
  // Sizing from the worst (highest) per-request costs seen, so the table errs on the safe side.
  const gatewayUs = Math.max(...results.map((r) => r.gatewayCpuUsPerReq));
  const redisUs = Math.max(...results.map((r) => r.redisCpuUsPerReq));
  const perInstance = 1e6 / gatewayUs;
  const perPrimary = (REDIS_TARGET_SHARE * 1e6) / redisUs;
  const sizing = [['Redis primaries', 'requests/s at 70% of each primary', 'gateway instances (one core each, at 100%)']];
  for (const m of CLUSTER_PRIMARIES) {
    sizing.push([String(m), (m * perPrimary).toFixed(0), (Math.floor(((m * perPrimary) / perInstance) * 10) / 10).toFixed(1)]);
  }
  lines.push(
    `sizing, from the highest costs above (gateway ${gatewayUs.toFixed(1)} µs/req: ${perInstance.toFixed(0)} req/s per ` +
      `gateway core; Redis ${redisUs.toFixed(2)} µs/req: ${perPrimary.toFixed(0)} req/s per primary at 70% of its core):`,
    table(sizing),
    'A Redis Cluster spreads keys over primaries by hash slot: the figures for M primaries hold when the load is spread ' +
      "over many keys; one key's counters live on one primary, so one key never gets more than one primary's rate.",
  );
  return lines.join('\n');
}

function table(rows: string[][]): string {
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padStart(widths[i] as number)).join('  ')).join('\n');
}
