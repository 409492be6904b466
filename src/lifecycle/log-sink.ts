import fs from 'node:fs';

/**
 * Where log lines go in production: a file descriptor (stdout), written in large asynchronous
 * batches. One line per request must not cost a system call per request, nor block the event loop
 * when the reader of stdout is slow:
 * - a turn's lines are encoded together at its end, into batches written once `batchBytes` have
 *   gathered, or by `flush()`
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
  // Lines are encoded into a buffer as they come (outside the JS heap): a line string dies at
  // once instead of waiting, with every line of its batch, to be copied by the garbage collector.
  let filling = Buffer.allocUnsafe(batchBytes);
  let used = 0;
  /** Full batches waiting for the write in flight. */
  const ready: Buffer[] = [];
  let readyBytes = 0;
  /** The batch being written, when a write is in flight. */
  let inFlight: Buffer | undefined;
  let dropped = 0;

  /** The filling batch, sealed: a view of its bytes; a fresh buffer takes its place. */
  const seal = (): void => {
    if (used === 0) return;
    const batch = filling.subarray(0, used);
    filling = Buffer.allocUnsafe(batchBytes);
    used = 0;
    ready.push(batch);
    readyBytes += batch.length;
  };

  const next = (): void => {
    const batch = ready.shift();
    if (!batch) return;
    readyBytes -= batch.length;
    writeBatch(batch);
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
        next();
        return;
      }
      if (written < batch.length) {
        writeBatch(batch.subarray(written));
        return;
      }
      inFlight = undefined;
      next();
    });
  };

  /**
   * Write what waits, synchronously (at exit). A batch already handed to the threadpool is left
   * to it: writing it again could duplicate lines.
   */
  const writeAllSync = (): void => {
    encodePending();
    seal();
    for (const batch of ready.splice(0)) {
      let offset = 0;
      for (let attempts = 0; offset < batch.length && attempts < 1000; attempts++) {
        try {
          offset += fs.writeSync(fd, batch, offset);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
        }
      }
    }
    readyBytes = 0;
  };

  /** Lines written this event-loop turn, encoded together at its end (or by a flush). */
  let pending: string[] = [];
  let pendingUnits = 0;
  let scheduled = false;

  /** Text whose room was checked when its lines came: into the filling batch, or a buffer of its own. */
  const encode = (text: string): void => {
    const most = text.length * 3;
    if (most > batchBytes - used) {
      seal();
      if (most > batchBytes) {
        const own = Buffer.from(text);
        ready.push(own);
        readyBytes += own.length;
      } else {
        used = filling.write(text, 0, 'utf8');
      }
    } else {
      used += filling.write(text, used, 'utf8');
    }
    if (!inFlight && ready.length > 0) next();
  };

  /**
   * The turn's lines, encoded at once: one call into the encoder per turn rather than per line
   * (each call flattens its string and crosses into C++; under load a turn carries ten lines or so).
   */
  const encodePending = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.length === 1 ? (pending[0] as string) : pending.join('');
    pending = [];
    pendingUnits = 0;
    encode(text);
  };

  return {
    write(line) {
      // A UTF-16 length bounds the UTF-8 length at 3 bytes per unit.
      if (readyBytes + used + (pendingUnits + line.length) * 3 > maxBuffered) {
        dropped++;
        return;
      }
      pending.push(line);
      pendingUnits += line.length;
      if (!scheduled) {
        scheduled = true;
        setImmediate(encodePending);
      }
    },
    flush() {
      encodePending();
      seal();
      if (!inFlight) next();
    },
    end(done) {
      encodePending();
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
