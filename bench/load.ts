/**
 * Load generator (undici Pool based).
 *
 *  - runClosedLoop: C connections, each sending requests back to back.
 *  - runFixedRate:  open loop, R requests/s on a fixed timetable; latency is
 *                   measured from the *scheduled* send time (no coordinated
 *                   omission: if the target stalls, queued requests count).
 *
 * Every response body is read to the end (streams included). A request is an
 * error if it throws, answers non-2xx, or (stream scenarios) ends without the
 * `data: [DONE]` terminator.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';

/** A benchmark scenario is pure data. */
export interface Scenario {
  /** Unique id used on the CLI (--scenarios) and in JSON. */
  id: string;
  /** Display name. */
  name: string;
  method: Dispatcher.HttpMethod;
  /** Path + query, e.g. /v1/chat/completions. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Response is an SSE stream (checked for the `data: [DONE]` terminator). */
  isStream: boolean;
  /** Restrict to these target names (default: all). */
  targets?: string[];
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface RunResult {
  mode: 'throughput' | 'fixed-rate';
  /** Measured window, seconds. */
  durationS: number;
  /** Requests completed successfully inside the measured window. */
  ok: number;
  /** Errors inside the measured window (non-2xx, exceptions, truncated streams). */
  errors: number;
  /** Distinct error messages (first few) with counts. */
  errorSamples: Record<string, number>;
  /** Completed requests (ok + errors) per second in the window. */
  rps: number;
  /** Fixed-rate only: requests scheduled in the window. */
  scheduled?: number;
  /** Full-response latency, ms (fixed-rate: from scheduled send time). */
  latency: LatencySummary;
  /** Time to first body byte, ms (same origin as latency). */
  ttfb: LatencySummary;
  /** Response body bytes per request (mean). */
  bytesPerRequest: number;
  /**
   * Fixed-rate only: how late requests were handed to undici vs. their
   * scheduled time, ms (timer granularity + load-generator event-loop delay).
   * Included in `latency`, identically for every target.
   */
  sendLag?: LatencySummary;
}

interface Outcome {
  ok: boolean;
  firstByteAt: number;
  endAt: number;
  bytes: number;
  error?: string;
}

const DONE_MARK = 'data: [DONE]';

function requestOptions(scenario: Scenario, extraHeaders: Record<string, string>): Dispatcher.RequestOptions {
  const headers: Record<string, string> = { ...scenario.headers, ...extraHeaders };
  return {
    method: scenario.method,
    path: scenario.path,
    headers,
    body: scenario.body,
  };
}

async function once(pool: Pool, opts: Dispatcher.RequestOptions, isStream: boolean): Promise<Outcome> {
  let firstByteAt = -1;
  let bytes = 0;
  try {
    const res = await pool.request(opts);
    let tail = '';
    const keepBodyForError = res.statusCode < 200 || res.statusCode >= 300;
    let errBody = '';
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (firstByteAt < 0) firstByteAt = performance.now();
      bytes += chunk.length;
      if (isStream) tail = (tail + chunk.toString('latin1')).slice(-64);
      if (keepBodyForError && errBody.length < 200) errBody += chunk.toString('utf8');
    }
    const endAt = performance.now();
    if (firstByteAt < 0) firstByteAt = endAt;
    if (keepBodyForError) {
      return { ok: false, firstByteAt, endAt, bytes, error: `HTTP ${res.statusCode}: ${errBody.slice(0, 160).trim()}` };
    }
    if (isStream && !tail.includes(DONE_MARK)) {
      return { ok: false, firstByteAt, endAt, bytes, error: 'stream ended without data: [DONE]' };
    }
    return { ok: true, firstByteAt, endAt, bytes };
  } catch (err) {
    const endAt = performance.now();
    const e = err as Error & { code?: string };
    return {
      ok: false,
      firstByteAt: firstByteAt < 0 ? endAt : firstByteAt,
      endAt,
      bytes,
      error: `${e.code ?? e.name}: ${e.message}`,
    };
  }
}

/** Collects samples for one measured window. */
class Recorder {
  private lat: number[] = [];
  private ttfb: number[] = [];
  ok = 0;
  errors = 0;
  bytes = 0;
  errorSamples: Record<string, number> = {};

  add(o: Outcome, origin: number): void {
    this.lat.push(o.endAt - origin);
    this.ttfb.push(o.firstByteAt - origin);
    this.bytes += o.bytes;
    if (o.ok) {
      this.ok++;
    } else {
      this.errors++;
      const key = o.error ?? 'error';
      if (key in this.errorSamples || Object.keys(this.errorSamples).length < 5) {
        this.errorSamples[key] = (this.errorSamples[key] ?? 0) + 1;
      }
    }
  }

  readonly sendLag: number[] = [];

  result(mode: RunResult['mode'], durationS: number, scheduled?: number): RunResult {
    const n = this.ok + this.errors;
    return {
      mode,
      durationS,
      ok: this.ok,
      errors: this.errors,
      errorSamples: this.errorSamples,
      rps: n / durationS,
      ...(scheduled !== undefined ? { scheduled } : {}),
      latency: summarize(this.lat),
      ttfb: summarize(this.ttfb),
      bytesPerRequest: n > 0 ? this.bytes / n : 0,
      ...(this.sendLag.length ? { sendLag: summarize(this.sendLag) } : {}),
    };
  }
}

export function summarize(values: number[]): LatencySummary {
  const n = values.length;
  if (n === 0) return { count: 0, mean: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: n,
    mean: sum / n,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[n - 1] ?? NaN,
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? NaN;
}

function newPool(origin: string, connections: number): Pool {
  return new Pool(origin, {
    connections,
    pipelining: 1,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
    keepAliveTimeout: 30_000,
  });
}

async function closePool(pool: Pool): Promise<void> {
  // close() waits for in-flight requests; don't hang forever on a stuck target.
  const closed = await Promise.race([pool.close().then(() => true), sleep(5000).then(() => false)]);
  if (!closed) await pool.destroy();
}

export interface ClosedLoopOptions {
  /** Origin, e.g. http://127.0.0.1:4010 */
  origin: string;
  scenario: Scenario;
  extraHeaders?: Record<string, string>;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  hooks?: WindowHooks;
}

/** Called when the measured window opens and closes (e.g. to sample CPU). */
export interface WindowHooks {
  windowStart?: () => void;
  windowEnd?: () => void;
}

/**
 * Fire hooks at the window boundaries. The returned cleanup clears pending
 * timers and, if the window opened but its end has not fired yet (the run
 * finished a little early), fires windowEnd right away.
 */
function scheduleHooks(hooks: WindowHooks | undefined, startInMs: number, endInMs: number): () => void {
  let started = false;
  let ended = false;
  const start = setTimeout(() => {
    started = true;
    hooks?.windowStart?.();
  }, Math.max(0, startInMs));
  const end = setTimeout(() => {
    ended = true;
    hooks?.windowEnd?.();
  }, Math.max(0, endInMs));
  return () => {
    clearTimeout(start);
    clearTimeout(end);
    if (started && !ended) {
      ended = true;
      hooks?.windowEnd?.();
    }
  };
}

/**
 * Closed loop: `concurrency` workers on a pool of as many connections, each
 * sending back to back for warmup + duration. Only requests that *complete*
 * inside the measured window [warmup, warmup + duration] are counted.
 */
export async function runClosedLoop(o: ClosedLoopOptions): Promise<RunResult> {
  const pool = newPool(o.origin, o.concurrency);
  const req = requestOptions(o.scenario, o.extraHeaders ?? {});
  const rec = new Recorder();
  const t0 = performance.now();
  const mStart = t0 + o.warmupMs;
  const mEnd = mStart + o.durationMs;
  const cancelHooks = scheduleHooks(o.hooks, o.warmupMs, o.warmupMs + o.durationMs);

  try {
    await closedLoop(pool, req, o.scenario.isStream, o.concurrency, rec, mStart, mEnd);
  } finally {
    cancelHooks();
    await closePool(pool);
  }
  return rec.result('throughput', o.durationMs / 1000);
}

/** `concurrency` workers sending back to back until `mEnd`; requests that complete in [mStart, mEnd] are recorded. */
async function closedLoop(
  pool: Pool,
  req: Dispatcher.RequestOptions,
  isStream: boolean,
  concurrency: number,
  rec: Recorder,
  mStart: number,
  mEnd: number,
): Promise<void> {
  const worker = async (): Promise<void> => {
    while (performance.now() < mEnd) {
      const start = performance.now();
      const out = await once(pool, req, isStream);
      if (out.endAt >= mStart && out.endAt <= mEnd) rec.add(out, start);
      // Avoid a hot spin when the target refuses connections.
      if (!out.ok && out.bytes === 0) await sleep(5);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export interface FixedRateOptions {
  origin: string;
  scenario: Scenario;
  extraHeaders?: Record<string, string>;
  /** Requests per second. */
  rate: number;
  warmupMs: number;
  durationMs: number;
  /** Upper bound on pool connections (opened lazily). Default 256. */
  maxConnections?: number;
  hooks?: WindowHooks;
}

/**
 * Open loop: request i is due at t0 + i / rate, independent of completions.
 * Latency = completion time − scheduled time, so timer lateness and client-side
 * queueing are included (identically for every target). Requests scheduled in
 * the warm-up are not recorded.
 */
export async function runFixedRate(o: FixedRateOptions): Promise<RunResult> {
  const pool = newPool(o.origin, o.maxConnections ?? 256);
  const req = requestOptions(o.scenario, o.extraHeaders ?? {});
  const rec = new Recorder();
  const intervalMs = 1000 / o.rate;
  const total = Math.round(((o.warmupMs + o.durationMs) / 1000) * o.rate);
  const firstMeasured = Math.round((o.warmupMs / 1000) * o.rate);
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now() + 5;
  const cancelHooks = scheduleHooks(o.hooks, 5 + o.warmupMs, 5 + o.warmupMs + o.durationMs);

  const fire = (i: number): void => {
    const scheduledAt = t0 + i * intervalMs;
    if (i >= firstMeasured) rec.sendLag.push(performance.now() - scheduledAt);
    const p = once(pool, req, o.scenario.isStream).then((out) => {
      if (i >= firstMeasured) rec.add(out, scheduledAt);
      inflight.delete(p);
    });
    inflight.add(p);
  };

  try {
    let i = 0;
    while (i < total) {
      const now = performance.now();
      while (i < total && t0 + i * intervalMs <= now) fire(i++);
      if (i >= total) break;
      const wait = t0 + i * intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
    }
    // Keep the measured window its nominal length (CPU sampling hooks).
    const endAt = t0 + total * intervalMs;
    const rest = endAt - performance.now();
    if (rest > 0) await sleep(rest);
    await Promise.all(inflight);
  } finally {
    cancelHooks();
    await closePool(pool);
  }
  return rec.result('fixed-rate', o.durationMs / 1000, total - firstMeasured);
}

/** One request, for sanity checks before measuring. */
export async function probe(
  origin: string,
  scenario: Scenario,
  extraHeaders: Record<string, string> = {},
): Promise<{ ok: boolean; error?: string; bytes: number; ms: number }> {
  const pool = newPool(origin, 1);
  try {
    const t = performance.now();
    const out = await once(pool, requestOptions(scenario, extraHeaders), scenario.isStream);
    return { ok: out.ok, bytes: out.bytes, ms: out.endAt - t, ...(out.error ? { error: out.error } : {}) };
  } finally {
    await closePool(pool);
  }
}

export interface InterleavedOptions {
  /** Target name → origin. */
  targets: { name: string; origin: string }[];
  scenario: Scenario;
  extraHeaders?: Record<string, string>;
  concurrency: number;
  /** Measured milliseconds of each slice. */
  sliceMs: number;
  /** Unmeasured milliseconds at the start of each slice (the target wakes up). */
  settleMs: number;
  slices: number;
  /** Called around each measured window with the target's name (e.g. to sample its CPU). */
  hooks?: { windowStart?: (target: string) => void; windowEnd?: (target: string) => void };
}

/**
 * Closed loops of `concurrency` connections on each target in turn, in short slices (the order
 * rotates every slice), for a throughput ratio that a shared host's drift does not skew: a host
 * that slows down for a few seconds slows every target alike. Each target keeps its own warm
 * connections; a slice ends by letting its requests in flight finish (not counted).
 */
export async function runInterleaved(o: InterleavedOptions): Promise<Map<string, RunResult>> {
  const pools = o.targets.map((t) => newPool(t.origin, o.concurrency));
  const req = requestOptions(o.scenario, o.extraHeaders ?? {});
  const recorders = o.targets.map(() => new Recorder());
  try {
    for (let slice = 0; slice < o.slices; slice++) {
      for (let j = 0; j < o.targets.length; j++) {
        const i = (j + slice) % o.targets.length;
        const pool = pools[i] as Pool;
        const rec = recorders[i] as Recorder;
        const name = (o.targets[i] as { name: string }).name;
        const mStart = performance.now() + o.settleMs;
        const mEnd = mStart + o.sliceMs;
        const hooks = scheduleHooks(
          { windowStart: () => o.hooks?.windowStart?.(name), windowEnd: () => o.hooks?.windowEnd?.(name) },
          o.settleMs,
          o.settleMs + o.sliceMs,
        );
        try {
          await closedLoop(pool, req, o.scenario.isStream, o.concurrency, rec, mStart, mEnd);
        } finally {
          hooks();
        }
      }
    }
  } finally {
    await Promise.all(pools.map((pool) => closePool(pool)));
  }
  const durationS = (o.sliceMs * o.slices) / 1000;
  return new Map(o.targets.map((t, i) => [t.name, (recorders[i] as Recorder).result('throughput', durationS)]));
}
