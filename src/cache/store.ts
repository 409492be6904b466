import type { UsageShape } from '../usage/shape.js';
import type { Usage } from '../usage/extract.js';

/** One stored answer: the complete JSON answer (a stream is stored as the answer it amounts to) and its usage. */
export interface CachedAnswer {
  readonly shape: UsageShape;
  /** The JSON answer, as the upstream sent it (a JSON answer) or as assembled from a stream. */
  readonly body: Buffer;
  /** What the upstream reported for the original call: what a hit saves. */
  readonly usage: Usage;
}

/**
 * Where answers live: process memory, or Redis shared by every instance. Entries are grouped by
 * scope (`key:<id>` or `group:<name>`) so one key's can be purged. Implementations may throw or
 * reject; the response cache turns every failure into a miss.
 */
export interface CacheStore {
  get(scope: string, hash: string): CachedAnswer | undefined | Promise<CachedAnswer | undefined>;
  set(scope: string, hash: string, answer: CachedAnswer, ttlMs: number): void | Promise<void>;
  /** Remove every entry, or every entry of one scope; resolves to how many went. */
  purge(scope?: string): Promise<number>;
}

/** Wire format for stores that keep bytes: one JSON header line, then the body. */
export function encodeAnswer(answer: CachedAnswer): Buffer {
  const { usage } = answer;
  const head = JSON.stringify({ v: 1, shape: answer.shape, in: usage.inputTokens, cached: usage.cachedTokens, out: usage.outputTokens });
  return Buffer.concat([Buffer.from(head + '\n'), answer.body]);
}

const SHAPES = new Set<string>(['chat', 'responses', 'completions', 'embeddings']);

export function decodeAnswer(bytes: Buffer): CachedAnswer | undefined {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) return undefined;
  const head = JSON.parse(bytes.toString('utf8', 0, newline)) as Record<string, unknown>;
  if (head.v !== 1 || typeof head.shape !== 'string' || !SHAPES.has(head.shape)) return undefined;
  const int = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);
  return {
    shape: head.shape as UsageShape,
    body: bytes.subarray(newline + 1),
    usage: { inputTokens: int(head.in), cachedTokens: int(head.cached), outputTokens: int(head.out) },
  };
}
