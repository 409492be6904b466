import type { BodySource } from './call.js';
import type { ClientHead } from './headers.js';

/**
 * Reading a small answer whole (a batch object, a models list, a 429's body for calibration) and,
 * for a 429, handing the same bytes on to the client afterwards.
 */

/** An answer a client is owed, worth reading whole first: plain, with a content-length within `limit`. */
export function readable(head: ClientHead, limit: number): boolean {
  const length = Number(head.contentLength);
  if (head.contentLength === undefined || !Number.isInteger(length) || length > limit) return false;
  const list = head.headers;
  for (let i = 0; i < list.length; i += 2) if (list[i] === 'content-encoding' && list[i + 1] !== 'identity') return false;
  return true;
}

/** The upstream answered with more than `limitBytes` where a small answer was expected (batch and file objects are a few KB). */
export class AnswerTooLargeError extends Error {
  constructor(limitBytes: number) {
    super(`upstream answer larger than ${limitBytes} bytes`);
  }
}

/** Read a (small) upstream answer whole. Rejects when the body fails or outgrows `limitBytes`. */
export function readAnswer(body: BodySource, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.consume({
      data(chunk) {
        size += chunk.length;
        if (size > limitBytes) {
          body.destroy(new AnswerTooLargeError(limitBytes));
          return;
        }
        chunks.push(chunk);
      },
      end: () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
      error: reject,
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
