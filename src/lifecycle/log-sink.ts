import fs from 'node:fs';

/**
 * Where log lines go in production: a file descriptor (stdout), written in large asynchronous
 * batches. One line per request must not cost a system call per request, nor block the event loop
 * when the reader of stdout is slow:
 * - lines are collected and written together once `batchBytes` have gathered, or by `flush()`
 *   (server.ts calls it every 250 ms), one write in flight at a time;
 * - when the reader falls behind and `maxBufferedBytes` are waiting, further lines are dropped
 *   and counted (`dropped`), never queued without bound and never written synchronously;
 * - `end()` (graceful exit) and `flushSync()` (crash) write whatever waits before the process ends.
 */
export interface LogSink {
  write(line: string): void;
  flush(): void;
  /** Write what waits now, synchronously (a crash is about to end the process). */
  flushSync(): void;
  /** Wait for the write in flight, write the rest, then call `done` (graceful exit). */
  end(done: () => void): void;
  /** Lines dropped because the reader fell behind. */
  readonly dropped: number;
}

export interface LogSinkOptions {
  readonly fd: number;
  readonly batchBytes?: number;
  readonly maxBufferedBytes?: number;
}

export function createLogSink(options: LogSinkOptions): LogSink {
  const { fd } = options;
  const batchBytes = options.batchBytes ?? 64 * 1024;
  const maxBuffered = options.maxBufferedBytes ?? 16 * 1024 * 1024;
  let lines: string[] = [];
  /** Characters waiting in `lines` (a UTF-16 count: close enough to bytes for thresholds). */
  let waiting = 0;
  /** The batch being written, when a write is in flight. */
  let inFlight: Buffer | undefined;
  let dropped = 0;

  const take = (): Buffer => {
    const batch = Buffer.from(lines.join(''));
    lines = [];
    waiting = 0;
    return batch;
  };

  const writeBatch = (batch: Buffer): void => {
    inFlight = batch;
    fs.write(fd, batch, 0, batch.length, null, (err, written) => {
      if (err) {
        // A non-blocking descriptor whose reader is behind: try the same bytes again shortly.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => writeBatch(batch), 10).unref();
          return;
        }
        inFlight = undefined;
        return;
      }
      if (written < batch.length) {
        writeBatch(batch.subarray(written));
        return;
      }
      inFlight = undefined;
      if (waiting >= batchBytes) writeBatch(take());
    });
  };

  /**
   * Write what waits, synchronously (at exit). A batch already handed to the threadpool is left
   * to it: writing it again could duplicate lines.
   */
  const writeAllSync = (): void => {
    if (waiting === 0) return;
    const batch = take();
    let offset = 0;
    for (let attempts = 0; offset < batch.length && attempts < 1000; attempts++) {
      try {
        offset += fs.writeSync(fd, batch, offset);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  };

  return {
    write(line) {
      if (waiting + line.length > maxBuffered) {
        dropped++;
        return;
      }
      lines.push(line);
      waiting += line.length;
      if (!inFlight && waiting >= batchBytes) writeBatch(take());
    },
    flush() {
      if (!inFlight && waiting > 0) writeBatch(take());
    },
    end(done) {
      if (!inFlight) {
        writeAllSync();
        done();
        return;
      }
      const wait = setInterval(() => {
        if (inFlight) return;
        clearInterval(wait);
        writeAllSync();
        done();
      }, 5);
    },
    flushSync: writeAllSync,
    get dropped() {
      return dropped;
    },
  };
}
