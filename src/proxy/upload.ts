import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { BodyTooLargeError } from '../errors/errors.js';

/**
 * Count an upload's bytes on their way upstream and stop it at the limit; `tap` sees each chunk
 * that passes (the batch queue counts batch files with it). Nothing is buffered whole.
 */
export function limitUpload(source: IncomingMessage, limitBytes: number, tap?: (chunk: Buffer) => void): Readable {
  const declared = Number(source.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw new BodyTooLargeError(limitBytes);
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limitBytes) {
        callback(new BodyTooLargeError(limitBytes));
        return;
      }
      tap?.(chunk);
      callback(null, chunk);
    },
  });
  source.on('error', (err) => counter.destroy(err));
  return source.pipe(counter);
}
