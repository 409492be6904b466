import { randomBytes } from 'node:crypto';
import { TollgateError } from '../errors/errors.js';

/** Realtime events tollgate itself writes (errors, rewritten rate limits) and small readers. */

const prefix = `event_tg${randomBytes(4).toString('hex')}`;
let counter = 0;
function eventId(): string {
  return prefix + (counter++).toString(16).padStart(8, '0');
}

export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** OpenAI's realtime `error` event; `clientEventId`: the client event it answers. */
export function errorEvent(type: string, code: string | null, message: string, clientEventId: string | null, param: string | null = null): string {
  return JSON.stringify({ type: 'error', event_id: eventId(), error: { type, code, message, param, event_id: clientEventId } });
}

/** A refusal (rate limit with its wait, insufficient_quota, …) as a realtime error event. */
export function refusalEvent(error: Error, clientEventId: string | null): string {
  if (error instanceof TollgateError) return errorEvent(error.type, error.code, error.message, clientEventId, error.param);
  return errorEvent('server_error', null, 'The server had an error while processing your request. Sorry about that!', clientEventId);
}

/** Seconds of a Go-style duration (`12ms`, `9.816s`, `7m12s`, `1h0m0s`), as the limiter writes them. */
function seconds(duration: string | undefined): number {
  if (duration === undefined) return 0;
  let total = 0;
  for (const [, value, unit] of duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    const n = Number(value);
    total += unit === 'ms' ? n / 1000 : unit === 'h' ? n * 3600 : unit === 'm' ? n * 60 : n;
  }
  return Math.round(total * 1000) / 1000;
}

/** The upstream's `rate_limits.updated`, with the key's own figures in place of the organisation's. */
export function rateLimitsEvent(upstream: Record<string, unknown>, headers: Readonly<Record<string, string>>): string {
  const limits: { name: string; limit: number; remaining: number; reset_seconds: number }[] = [];
  for (const name of ['requests', 'tokens']) {
    const limit = headers[`x-ratelimit-limit-${name}`];
    if (limit === undefined) continue;
    limits.push({ name, limit: Number(limit), remaining: Number(headers[`x-ratelimit-remaining-${name}`] ?? 0), reset_seconds: seconds(headers[`x-ratelimit-reset-${name}`]) });
  }
  return JSON.stringify({ type: 'rate_limits.updated', event_id: upstream.event_id ?? eventId(), rate_limits: limits });
}

/** Characters of the text in a conversation item (its content's text, transcripts, function output). */
export function textChars(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + textChars(v), 0);
  if (value === null || typeof value !== 'object') return 0;
  let n = 0;
  for (const [key, v] of Object.entries(value)) {
    // Ids, roles and types are not prompt text; audio and images are estimated elsewhere.
    if (key === 'id' || key === 'type' || key === 'role' || key === 'status' || key === 'call_id' || key === 'previous_item_id') continue;
    if (key === 'audio' && typeof v === 'string') n += 0;
    else n += textChars(v);
  }
  return n;
}
