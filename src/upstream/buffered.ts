import type { BodySource } from './call.js';
import type { ClientHead } from './headers.js';

/**
 * Reading a small answer whole (a 429's body, for calibration) and handing the same bytes on to
 * the client afterwards. Only plain bodies with a content-length within `limit` are read: anything
 * else is left to stream through untouched.
 */

export function readable(head: ClientHead, limit: number): boolean {
  const length = Number(head.contentLength);
  if (head.contentLength === undefined || !Number.isInteger(length) || length > limit) return false;
  const list = head.headers;
  for (let i = 0; i < list.length; i += 2) if (list[i] === 'content-encoding' && list[i + 1] !== 'identity') return false;
  return true;
}

/** The whole body, or the error that ended it. */
export function readAll(body: BodySource): Promise<Buffer | Error> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    body.consume({
      data: (chunk) => void chunks.push(Buffer.from(chunk)),
      end: () => resolve(Buffer.concat(chunks)),
      error: (error) => resolve(error),
    });
  });
}

/** A body source replaying read bytes (or the error that ended them), honouring pause. */
export function replay(bytes: Buffer | Error): BodySource {
  let consumer: Parameters<BodySource['consume']>[0] | undefined;
  let paused = false;
  let done = false;
  const flush = (): void => {
    if (done || paused || !consumer) return;
    done = true;
    const to = consumer;
    consumer = undefined;
    if (bytes instanceof Error) return to.error(bytes);
    if (bytes.length > 0) to.data(bytes);
    to.end();
  };
  return {
    consume(c) {
      consumer = c;
      queueMicrotask(flush);
    },
    pause: () => void (paused = true),
    resume() {
      paused = false;
      flush();
    },
    destroy(error) {
      if (done) return;
      done = true;
      const to = consumer;
      consumer = undefined;
      if (error) to?.error(error);
    },
  };
}
