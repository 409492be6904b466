/**
 * Loaded into the gateway under soak (`node --expose-gc --import tsx --import bench/soak-probe.ts
 * dist/server.js`): every SOAK_SAMPLE_MS it appends one JSON line to SOAK_SAMPLES_FILE with the
 * RSS, the heap after a forced full collection, the event-loop delay of the window (and of the run
 * so far) and the open handles. The collection is forced after the delay is read, and the window
 * restarts after it, so the probe's own pause is not counted as the gateway's delay.
 */
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';

const file = process.env.SOAK_SAMPLES_FILE;
const every = Number(process.env.SOAK_SAMPLE_MS ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!file || !gc) throw new Error('soak-probe: needs SOAK_SAMPLES_FILE and node --expose-gc');
const runGc = gc;

const window = monitorEventLoopDelay({ resolution: 10 });
const total = monitorEventLoopDelay({ resolution: 10 });
window.enable();
total.enable();
const startedAt = Date.now();
const ms = (ns: number): number => Math.round(ns / 1e4) / 100;

const timer = setInterval(() => {
  const p99 = window.percentile(99);
  const max = window.max;
  window.disable();
  total.disable();
  runGc();
  const heap = v8.getHeapStatistics();
  const memory = process.memoryUsage();
  const handles = process.getActiveResourcesInfo();
  appendFileSync(
    file,
    JSON.stringify({
      t: (Date.now() - startedAt) / 1000,
      rssMb: Math.round(memory.rss / 1024 / 10.24) / 100,
      heapAfterGcMb: Math.round(heap.used_heap_size / 1024 / 10.24) / 100,
      externalMb: Math.round(memory.external / 1024 / 10.24) / 100,
      eldP99Ms: ms(p99),
      eldMaxMs: ms(max),
      eldRunP99Ms: ms(total.percentile(99)),
      handles: handles.length,
      handleTypes: handles.reduce<Record<string, number>>((acc, type) => ((acc[type] = (acc[type] ?? 0) + 1), acc), {}),
    }) + '\n',
  );
  window.reset();
  window.enable();
  total.enable();
}, every);
timer.unref();
