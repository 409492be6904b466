import { hash } from 'node:crypto';
import type { UsageShape } from '../usage/shape.js';

/**
 * The fingerprint of a prompt's stable head: the first `headChars` characters of the prompt in
 * the order the provider builds its cached prefix (tools, the structured-output schema, then the
 * instructions and messages in order, system and developer messages first as the client sends
 * them). OpenAI routes a request to a cache machine by a hash of about its first 256 tokens
 * (~1024 characters), so requests with the same fingerprint are the ones that can share a cached
 * prefix; a long shared system prompt makes every request of an app share one fingerprint.
 */

type Json = Record<string, unknown>;

const text = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

/** The head as text, built piece by piece and cut at `headChars` (the rest of the prompt is never serialised). */
export function promptHead(shape: UsageShape, body: Json, headChars: number): string {
  let head = '';
  const add = (piece: unknown): boolean => {
    if (piece === undefined || piece === null) return head.length < headChars;
    head += text(piece) + '\u0000';
    return head.length < headChars;
  };
  const schema = shape === 'responses' ? (body.text as Json | undefined)?.format : body.response_format;
  if (add(body.tools) && add(schema)) {
    if (shape === 'responses') {
      if (add(body.instructions)) {
        const input = body.input;
        if (Array.isArray(input)) {
          for (const item of input) if (!add(item)) break;
        } else add(input);
      }
    } else {
      const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
      for (const message of messages) if (!add(message)) break;
    }
  }
  return head.length > headChars ? head.slice(0, headChars) : head;
}

/** 16 hex characters (64 bits) of SHA-256 over the head. */
export function fingerprintOf(shape: UsageShape, body: Json, headChars: number): string {
  return hash('sha256', promptHead(shape, body, headChars), 'hex').slice(0, 16);
}
