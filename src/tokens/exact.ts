import { createRequire } from 'node:module';
import { setImmediate } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { TokenizerBusyError } from '../errors/request-errors.js';

/**
 * Exact token counts with the o200k_base tokenizer (gpt-4.1 family), off the event loop. A 31 MB
 * prompt takes the tokenizer seconds; run on the loop, that held every other request (and
 * /healthz) for as long. So the count runs in one worker thread, started on first use (most
 * requests never need it) and unref'd (it never keeps the process alive), with a bounded queue:
 * what waits beyond it is refused with 503 rather than piling up memory.
 *
 * One worker per process, like the tokenizer tables it holds: every app in the process shares it.
 */

/** Counts waiting for (or in) the worker at most; each holds its prompt's text. */
export const MAX_QUEUED_COUNTS = 16;

// The worker is evaluated from text (CommonJS) so that it runs alike from the TypeScript sources
// under test and from the built dist/; the tokenizer's CommonJS build is resolved from here.
const TOKENIZER = createRequire(import.meta.url).resolve('gpt-tokenizer/encoding/o200k_base');
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { countTokens } = require(${JSON.stringify(TOKENIZER)});
const texts = new Map();
parentPort.on('message', ({ id, pieces, last }) => {
  const held = texts.get(id);
  if (held) for (const piece of pieces) held.push(piece);
  if (!last) {
    if (!held) texts.set(id, pieces);
    return;
  }
  texts.delete(id);
  let tokens;
  try { tokens = countTokens((held ?? pieces).join('')); } catch (err) { tokens = -1; }
  parentPort.postMessage({ id, tokens });
});
`;

/**
 * Characters per message to the worker. Copying a message's text blocks the loop; a 31 MB prompt
 * in one message held it ~50 ms, in 1 Mi-character slices with a turn of the loop between them
 * it never holds it more than a few ms.
 */
const SLICE_CHARS = 1 << 20;

interface Pending {
  readonly resolve: (tokens: number) => void;
  readonly reject: (err: Error) => void;
}

let worker: Worker | undefined;
const pending = new Map<number, Pending>();
let nextId = 0;

function failAll(err: Error): void {
  for (const job of pending.values()) job.reject(err);
  pending.clear();
  worker = undefined;
}

function started(): Worker {
  if (worker) return worker;
  const created = new Worker(WORKER_SOURCE, { eval: true });
  created.unref();
  created.on('message', (message: { id: number; tokens: number }) => {
    const job = pending.get(message.id);
    if (!job) return;
    pending.delete(message.id);
    if (message.tokens < 0) job.reject(new Error('tokenizer failed'));
    else job.resolve(message.tokens);
  });
  // A worker that dies fails what it held; the next count starts a new one.
  created.on('error', failAll);
  created.on('exit', () => failAll(new Error('tokenizer worker exited')));
  worker = created;
  return created;
}

/** The exact o200k_base count of `parts` joined by newlines (what promptText builds). */
export function countTokensExactly(parts: string | readonly string[]): Promise<number> {
  if (pending.size >= MAX_QUEUED_COUNTS) return Promise.reject(new TokenizerBusyError());
  const id = nextId++;
  const counted = new Promise<number>((resolve, reject) => pending.set(id, { resolve, reject }));
  sendSliced(started(), id, typeof parts === 'string' ? [parts] : parts).catch((err: unknown) => {
    pending.get(id)?.reject(err instanceof Error ? err : new Error(String(err)));
    pending.delete(id);
  });
  return counted;
}

/** The parts, joined by newlines, in messages of about SLICE_CHARS characters, a turn of the loop apart. */
async function sendSliced(target: Worker, id: number, parts: readonly string[]): Promise<void> {
  let pieces: string[] = [];
  let size = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) {
      pieces.push('\n');
      size += 1;
    }
    const part = parts[i] as string;
    // A slice may split a surrogate pair: the worker joins every piece before counting.
    for (let at = 0; at < part.length; at += SLICE_CHARS) {
      const piece = part.length <= SLICE_CHARS ? part : part.slice(at, at + SLICE_CHARS);
      pieces.push(piece);
      size += piece.length;
      if (size < SLICE_CHARS) continue;
      target.postMessage({ id, pieces, last: false });
      pieces = [];
      size = 0;
      await setImmediate();
    }
  }
  target.postMessage({ id, pieces, last: true });
}

/**
 * A bound without the tokenizer: every token is at least one UTF-8 byte, so the parts, joined by
 * newlines, hold at most this many tokens. Cheap (no copy, no join).
 */
export function tokenUpperBound(parts: readonly string[]): number {
  let bytes = Math.max(parts.length - 1, 0);
  for (const part of parts) bytes += Buffer.byteLength(part, 'utf8');
  return bytes;
}
