import busboy from 'busboy';
import { JsonlTokenCounter, type JsonlCount, type JsonlCounterOptions } from './jsonl-counter.js';

/**
 * Reads a `multipart/form-data` file upload (POST /v1/files) from a copy of its chunks on their
 * way upstream: the `purpose` field and the token count of the `file` part. Parsed incrementally
 * (busboy); the upload itself is never held back, slowed or altered by this reader, whatever it
 * finds: a malformed body only ends the counting.
 *
 * The openai SDK writes the form fields in the caller's object order, so `file` usually comes
 * before `purpose`: the file is counted whatever its purpose, which is decided at the end. When
 * `purpose` arrives first and is not `batch`, the rest is not parsed.
 */

const FINISH_BOUND_MS = 2000;

export interface UploadCount {
  /** The `purpose` field, when the form had one before it ended or counting stopped. */
  readonly purpose: string | undefined;
  /** The `file` part's count; undefined when there was none or it was not read. */
  readonly file: JsonlCount | undefined;
}

export interface UploadCounter {
  /** A copy of the next request chunk. Never throws. */
  push(chunk: Buffer): void;
  /** The request body has ended (or will not be read further): finish parsing and report. */
  finish(): Promise<UploadCount>;
}

/** A counter for a multipart upload, or undefined when the content type is not multipart/form-data. */
export function createUploadCounter(contentType: string | undefined, options: JsonlCounterOptions): UploadCounter | undefined {
  if (contentType === undefined || !/^multipart\/form-data\s*;/i.test(contentType)) return undefined;
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: 64 * 1024, fields: 64, parts: 256 } });
  } catch {
    return undefined;
  }
  let purpose: string | undefined;
  let counter: JsonlTokenCounter | undefined;
  /** The file part was read to its end (not cut by a malformed body or an early stop). */
  let fileComplete = false;
  /** No more bytes need reading (the form ended, or nothing left is worth knowing). */
  let stopped = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    parser.removeAllListeners('file');
    parser.removeAllListeners('field');
    resolveClosed();
  };
  // A purpose other than batch, or a file that is no valid batch file: nothing will be recorded.
  const pointless = (): boolean => (purpose !== undefined && purpose !== 'batch') || (counter !== undefined && !counter.viable);

  parser.on('field', (name: string, value: string) => {
    if (name === 'purpose' && purpose === undefined) purpose = value;
    if (pointless()) stop();
  });
  parser.on('file', (name: string, stream: NodeJS.ReadableStream) => {
    // A body cut mid-part destroys the part's stream with an error: expected here, never thrown.
    stream.on('error', stop);
    if (name !== 'file' || counter !== undefined) {
      stream.resume();
      return;
    }
    const own = new JsonlTokenCounter(options);
    counter = own;
    stream.on('data', (chunk: Buffer) => {
      own.push(chunk);
      if (!own.viable) stop();
    });
    stream.on('end', () => {
      fileComplete = true;
    });
  });
  parser.on('error', stop);
  parser.on('close', stop);

  return {
    push(chunk) {
      if (stopped) return;
      try {
        parser.write(chunk);
      } catch {
        stop();
      }
    },
    async finish() {
      // The parser finishes synchronously as a rule; never let a stuck one hold an answer back.
      const bound = setTimeout(stop, FINISH_BOUND_MS);
      bound.unref();
      if (!stopped) {
        try {
          parser.end();
        } catch {
          stop();
        }
      }
      await closed;
      clearTimeout(bound);
      const file = counter?.end();
      return { purpose, file: fileComplete ? file : undefined };
    },
  };
}
