import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogSink } from '../../src/lifecycle/log-sink.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-log-sink-'));
let n = 0;
const opened: number[] = [];
function file(): { fd: number; read: () => string } {
  const name = path.join(dir, `log-${++n}`);
  const fd = openSync(name, 'w');
  opened.push(fd);
  return { fd, read: () => readFileSync(name, 'utf8') };
}
const ended = (sink: { end(done: () => void): void }) => new Promise<void>((resolve) => sink.end(resolve));
const line = (i: number) => `{"n":${i},"msg":"request ✓"}\n`;

afterEach(() => {
  while (opened.length) closeSync(opened.pop() as number);
});

describe('log sink', () => {
  it('holds lines until a batch has gathered, then writes them in order', async () => {
    const out = file();
    const sink = createLogSink({ fd: out.fd, batchBytes: 200 });
    sink.write(line(0));
    await new Promise((r) => setTimeout(r, 20));
    expect(out.read()).toBe('');
    for (let i = 1; i < 100; i++) sink.write(line(i));
    await ended(sink);
    expect(out.read()).toBe(Array.from({ length: 100 }, (_, i) => line(i)).join(''));
  });

  it('flush() writes what waits, without waiting for a full batch', async () => {
    const out = file();
    const sink = createLogSink({ fd: out.fd });
    sink.write(line(1));
    sink.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(out.read()).toBe(line(1));
  });

  it('flushSync() writes what waits at once (a crash is ending the process)', () => {
    const out = file();
    const sink = createLogSink({ fd: out.fd });
    sink.write(line(1));
    sink.write(line(2));
    sink.flushSync();
    expect(out.read()).toBe(line(1) + line(2));
  });

  it('drops and counts lines beyond the buffer bound instead of growing without limit', async () => {
    const out = file();
    const sink = createLogSink({ fd: out.fd, batchBytes: 1_000_000, maxBufferedBytes: 200 });
    for (let i = 0; i < 10; i++) sink.write(line(i));
    // The bound counts 3 bytes per UTF-16 unit (UTF-8's worst case), so fewer lines than 200
    // bytes' worth are kept, and the first line always is.
    expect(sink.dropped).toBeGreaterThan(0);
    const kept = 10 - sink.dropped;
    expect(kept).toBeGreaterThanOrEqual(1);
    await ended(sink);
    expect(out.read()).toBe(Array.from({ length: kept }, (_, i) => line(i)).join(''));
    expect(Buffer.byteLength(out.read())).toBeLessThanOrEqual(200);
  });

  it('a line longer than a batch is written whole, in order', async () => {
    const out = file();
    const sink = createLogSink({ fd: out.fd, batchBytes: 64 });
    const long = `{"msg":"${'x'.repeat(500)}"}\n`;
    sink.write(line(1));
    sink.write(long);
    sink.write(line(2));
    await ended(sink);
    expect(out.read()).toBe(line(1) + long + line(2));
  });

  it('lines of several turns, flushed between them, come out whole and in order', async () => {
    const out = file();
    const sink = createLogSink({ fd: out.fd, batchBytes: 256 });
    let i = 0;
    for (let turn = 0; turn < 20; turn++) {
      for (let k = 0; k < turn % 4; k++) sink.write(line(i++));
      if (turn % 5 === 0) sink.flush();
      await new Promise((r) => setImmediate(r));
    }
    await ended(sink);
    expect(out.read()).toBe(Array.from({ length: i }, (_, j) => line(j)).join(''));
  });
});
