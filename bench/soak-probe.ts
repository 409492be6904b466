/**
 * Loaded into the gateway under soak (`node --expose-gc --import tsx --import bench/soak-probe.ts
 * dist/server.js`): every SOAK_SAMPLE_MS it appends one JSON line to SOAK_SAMPLES_FILE with the
 * RSS, the heap after a forced full collection, the event-loop delay of the window and of the run
 * so far, and the open handles.
 *
 * The event-loop delay is sampled like monitorEventLoopDelay (a 10 ms timer, how late it fires),
 * twice: as the wall clock sees it, and less the time the main thread waited on the CPU run queue
 * meanwhile (/proc/thread-self/schedstat): the gateway's own share, which a host of its own would
 * see. On a shared host the first also holds everyone else's work. The forced collection is not
 * counted in either, nor the start-up before the first request.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { appendFileSync, readFileSync } from 'node:fs';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import v8 from 'node:v8';

const file = process.env.SOAK_SAMPLES_FILE;
const every = Number(process.env.SOAK_SAMPLE_MS ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!file || !gc) throw new Error('soak-probe: needs SOAK_SAMPLES_FILE and node --expose-gc');
const runGc = gc;
const RESOLUTION_MS = 10;

/** Nanoseconds the main thread has waited on a run queue (0 where /proc has no schedstat). */
function runQueueWaitNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[1]) || 0;
  } catch {
    return 0;
  }
}

const histograms = { wall: createHistogram(), own: createHistogram(), runWall: createHistogram(), runOwn: createHistogram() };
let due = performance.now() + RESOLUTION_MS;
let waited = runQueueWaitNs();

function record(h: RecordableHistogram, ns: number): void {
  h.record(Math.max(1, Math.round(ns)));
}

function tick(): void {
  const lateNs = Math.max(0, performance.now() - due) * 1e6;
  const wait = runQueueWaitNs();
  const ownNs = Math.max(0, lateNs - (wait - waited));
  waited = wait;
  record(histograms.wall, lateNs);
  record(histograms.runWall, lateNs);
  record(histograms.own, ownNs);
  record(histograms.runOwn, ownNs);
  restart();
}

function restart(): void {
  due = performance.now() + RESOLUTION_MS;
  setTimeout(tick, RESOLUTION_MS).unref();
}
restart();

/**
 * Start-up (loading the modules, building the app) holds the loop before the gateway serves
 * anything; it is not a delay under traffic. The figures count from the first request on (the
 * harness's readiness check), so the first window no longer shows the start-up as a stall.
 */
let counting = false;
const firstRequest = (): void => {
  if (counting) return;
  counting = true;
  for (const h of Object.values(histograms)) h.reset();
  waited = runQueueWaitNs();
  due = performance.now() + RESOLUTION_MS;
  setImmediate(() => unsubscribe('http.server.request.start', firstRequest));
};
subscribe('http.server.request.start', firstRequest);

const startedAt = Date.now();
const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
const mb = (bytes: number): number => Math.round(bytes / 1024 / 10.24) / 100;

const timer = setInterval(() => {
  const { wall, own, runWall, runOwn } = histograms;
  const line = {
    t: (Date.now() - startedAt) / 1000,
    eldP99Ms: ms(wall.percentile(99)),
    eldMaxMs: ms(wall.max),
    eldRunP99Ms: ms(runWall.percentile(99)),
    ownEldP99Ms: ms(own.percentile(99)),
    ownEldMaxMs: ms(own.max),
    ownEldRunP99Ms: ms(runOwn.percentile(99)),
  };
  runGc();
  const heap = v8.getHeapStatistics();
  const memory = process.memoryUsage();
  const handles = process.getActiveResourcesInfo();
  appendFileSync(
    file,
    JSON.stringify({
      ...line,
      rssMb: mb(memory.rss),
      heapAfterGcMb: mb(heap.used_heap_size),
      externalMb: mb(memory.external),
      handles: handles.length,
      handleTypes: handles.reduce<Record<string, number>>((acc, type) => ((acc[type] = (acc[type] ?? 0) + 1), acc), {}),
    }) + '\n',
  );
  wall.reset();
  own.reset();
  // The collection and this sample are not the gateway's delay: the next tick is due from now.
  waited = runQueueWaitNs();
  due = performance.now() + RESOLUTION_MS;
}, every);
timer.unref();
