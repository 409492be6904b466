import type { UsageShape } from '../usage/shape.js';
import { readUsage, type Usage } from './extract.js';

/**
 * Usage of a JSON answer, read from the last bytes only: OpenAI puts `usage` near the end of
 * every object that has one, and parsing a large answer (embeddings, long completions) whole
 * just to reach it would cost more than the proxying itself.
 */
const TAIL_BYTES = 64 * 1024;
const USAGE_KEY = Buffer.from('"usage"');

/** Keeps only the last TAIL_BYTES of a body as it passes. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - (this.chunks[0] as Buffer).length >= TAIL_BYTES) {
      this.size -= (this.chunks.shift() as Buffer).length;
    }
  }

  bytes(): Buffer {
    return this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
  }
}

/** Find the last `"usage": {…}` member in the bytes and read it. */
export function usageFromJsonTail(shape: UsageShape, tail: Buffer): Usage | undefined {
  const usage = lastObjectMember(tail, USAGE_KEY);
  return usage === undefined ? undefined : readUsage(shape, usage);
}

/** The last `"name": {…}` member in the bytes (`key` is the quoted name), parsed; undefined when there is none. */
export function lastObjectMember(tail: Buffer, key: Buffer = USAGE_KEY): unknown {
  let at = tail.lastIndexOf(key);
  while (at !== -1) {
    const object = objectAfterColon(tail, at + key.length);
    if (object !== undefined) {
      try {
        return JSON.parse(object) as unknown;
      } catch {
        // not an object after all: look further back
      }
    }
    at = at === 0 ? -1 : tail.lastIndexOf(key, at - 1);
  }
  return undefined;
}

/** The balanced `{…}` that follows `: ` at `from`, as text (strings and escapes respected). */
function objectAfterColon(bytes: Buffer, from: number): string | undefined {
  let i = from;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (bytes[i] !== 0x3a) return undefined;
  i++;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (bytes[i] !== 0x7b) return undefined;
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) return bytes.toString('utf8', start, i + 1);
  }
  return undefined;
}
