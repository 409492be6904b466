import { hash } from 'node:crypto';
import { JsonTooDeepError } from '../errors/request-errors.js';
import { MAX_JSON_DEPTH } from '../usage/json-depth.js';

/**
 * The exact-repeat cache key: a SHA-256 over the endpoint, the model, the scope (whose entries
 * these are: a key id or a group, never a secret) and the request body serialised in a stable
 * key order, without the fields that do not change the answer (`stream`, `stream_options`: a
 * streamed and a non-streamed request share one entry).
 */

/** Body members that change how an answer is delivered, not what it says. */
const DELIVERY_ONLY = new Set(['stream', 'stream_options']);

/**
 * JSON with every object's keys sorted: the same value always gives the same text. Bounded like
 * every walker over client JSON (bodies deeper than MAX_JSON_DEPTH are refused when parsed; the
 * bound here keeps a caller that skipped that check from overflowing the stack).
 */
export function stableStringify(value: unknown, depth = 1): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (depth > MAX_JSON_DEPTH) throw new JsonTooDeepError(MAX_JSON_DEPTH);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + stableStringify(value[i], depth + 1);
    return out + ']';
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    out += (first ? '' : ',') + JSON.stringify(key) + ':' + stableStringify(member, depth + 1);
    first = false;
  }
  return out + '}';
}

export function cacheKeyOf(endpoint: string, model: string, scope: string, body: Record<string, unknown>): string {
  const kept: Record<string, unknown> = {};
  for (const key in body) if (!DELIVERY_ONLY.has(key)) kept[key] = body[key];
  return hash('sha256', `${endpoint}\u0000${model}\u0000${scope}\u0000${stableStringify(kept)}`, 'hex');
}

/** What the request's `Cache-Control` asks of the cache. */
export type CacheDirective = 'use' | 'no-cache' | 'no-store';

/** `no-store` wins over `no-cache`; both skip the lookup, `no-store` skips the store too. */
export function cacheDirective(header: string | string[] | undefined): CacheDirective {
  if (header === undefined) return 'use';
  const text = (Array.isArray(header) ? header.join(',') : header).toLowerCase();
  let directive: CacheDirective = 'use';
  for (const part of text.split(',')) {
    const token = part.trim().split('=')[0]?.trim();
    if (token === 'no-store') return 'no-store';
    if (token === 'no-cache') directive = 'no-cache';
  }
  return directive;
}
