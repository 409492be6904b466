import { isJsonObject, type JsonObject } from '../usage/json.js';
import type { UsageShape } from '../usage/shape.js';
import { SseDecoder, type SseEvent } from './sse.js';

/**
 * Usage for every chat / legacy-completions stream, even when the client did not ask for it.
 *
 * Tollgate asks the upstream for `stream_options.include_usage` on the client's behalf
 * ({@link injectUsageRequest}); the upstream then adds `"usage":null` to every chunk and one extra
 * chunk with `"choices":[]` and the full `usage` before `[DONE]`. {@link InjectedUsageStripper}
 * takes both out again on the way to the client, byte-exactly and without re-serialising any
 * JSON, so the client receives what OpenAI would have sent it without include_usage. The usage
 * chunk itself is still read (from the original bytes) by the relay's side decoder.
 */

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

const USAGE_KEY = Buffer.from('"usage"');
const DONE = Buffer.from('data: [DONE]');
/** `data: [DONE]` with its framing is short; longer events are never the terminal one. */
const DONE_EVENT_MAX = 24;
const NULL = Buffer.from('null');
const DATA_FIELD = Buffer.from('data:');
const EMPTY = Buffer.alloc(0);
const INCLUDE_USAGE_MEMBER = Buffer.from(',"stream_options":{"include_usage":true}');

/** The endpoints whose streams take `stream_options.include_usage` (chat and legacy completions). */
export function canInjectUsage(shape: UsageShape | undefined): boolean {
  return shape === 'chat' || shape === 'completions';
}

/**
 * The request body to send upstream so that a stream reports its usage, or undefined when
 * nothing needs to change (not a stream, or the client already asked for usage).
 *
 * `body` is the parsed JSON object that would be sent. When `raw` (its exact bytes) is given and
 * the body has no `stream_options` at all (the common case), the member is spliced in before the
 * closing brace: every other byte stays as the client sent it (numbers beyond 2^53, escapes, key
 * order), and a large body (images as base64) is not re-serialised. Otherwise the body is
 * re-serialised with `stream_options: {...existing, include_usage: true}` (key order kept).
 */
export function injectUsageRequest(body: JsonObject, raw?: Buffer): Buffer | undefined {
  if (body.stream !== true) return undefined;
  const options = body.stream_options;
  if (isJsonObject(options) && options.include_usage === true) return undefined;
  if (raw !== undefined && options === undefined) {
    const spliced = spliceMember(raw);
    if (spliced) return spliced;
  }
  const existing = isJsonObject(options) ? options : {};
  return Buffer.from(JSON.stringify({ ...body, stream_options: { ...existing, include_usage: true } }));
}

/**
 * `raw` with `member` (`,"name":value`, default `,"stream_options":{"include_usage":true}`) before
 * its final `}`; undefined if its shape is odd.
 */
export function spliceMember(raw: Buffer, member: Buffer = INCLUDE_USAGE_MEMBER): Buffer | undefined {
  let end = raw.length - 1;
  while (end >= 0 && isJsonSpace(raw[end] as number)) end--;
  if (end < 0 || raw[end] !== CLOSE_BRACE) return undefined;
  // An object with members (it has `stream`): the byte before the brace, past white space, ends a value.
  let last = end - 1;
  while (last >= 0 && isJsonSpace(raw[last] as number)) last--;
  if (last < 0 || raw[last] === OPEN_BRACE) return undefined;
  return Buffer.concat([raw.subarray(0, last + 1), member, raw.subarray(last + 1)]);
}

function isJsonSpace(byte: number): boolean {
  return byte === SPACE || byte === LF || byte === CR || byte === TAB;
}

/** What the bytes of the line being read so far (possibly in an earlier chunk) amount to. */
const enum Line {
  /** Nothing yet: an LF now ends a blank line. */
  Empty,
  /** Exactly one CR: an LF now ends a blank line (CRLF framing). */
  Cr,
  /** Anything else. */
  Text,
}

/**
 * Rewrites an upstream chat / legacy-completions SSE stream that carries usage only because
 * tollgate asked for it into the stream the client would have got without `include_usage`:
 *
 * - the event whose JSON has `"choices":[]` and a `usage` object is dropped (its usage handed to
 *   `onUsage` first);
 * - in every other `data:` event, the top-level `"usage":null` member is cut out of the bytes
 *   (`,"usage":null` anywhere, or `"usage":null,` as first member; any white space around the
 *   colon), nothing else is touched;
 * - `[DONE]`, comments, other fields and the event framing (`\n\n` or `\r\n\r\n`) pass unchanged.
 *
 * The network may cut chunks anywhere (inside a UTF-8 character, inside `"usage":null`): the
 * rewriter works on whole events. It holds back only the unfinished tail of a chunk and emits
 * each event as soon as its blank line arrives. Only the usage chunk is ever parsed.
 */
export class InjectedUsageStripper {
  /** Unfinished event bytes from earlier chunks (copies). */
  private pending: Buffer[] = [];
  private line = Line.Empty;

  constructor(private readonly onUsage?: (usage: JsonObject) => void) {}

  /** Feed one upstream chunk; returns the bytes to send now (empty when the chunk ends mid-event). */
  push(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let eventStart = 0;
    let lineStart = 0;
    let lf = chunk.indexOf(LF);
    while (lf !== -1) {
      let blank: boolean;
      if (lineStart === 0 && this.line !== Line.Empty) {
        blank = this.line === Line.Cr && lf === 0;
      } else {
        const length = lf - lineStart;
        blank = length === 0 || (length === 1 && chunk[lineStart] === CR);
      }
      lineStart = lf + 1;
      this.line = Line.Empty;
      if (blank) {
        const tail = eventStart === 0 && lineStart === chunk.length ? chunk : chunk.subarray(eventStart, lineStart);
        const event = this.pending.length === 0 ? tail : Buffer.concat([...this.pending, tail]);
        this.pending = [];
        this.rewrite(event, parts);
        eventStart = lineStart;
      }
      lf = chunk.indexOf(LF, lineStart);
    }
    // Keep a copy: the caller may reuse or release the chunk's memory.
    if (eventStart < chunk.length) this.pending.push(Buffer.from(chunk.subarray(eventStart)));
    const rest = chunk.length - lineStart;
    if (rest > 0) this.line = this.line === Line.Empty && rest === 1 && chunk[lineStart] === CR ? Line.Cr : Line.Text;
    if (parts.length === 0) return EMPTY;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  /**
   * The upstream ended cleanly. An event still open (its blank line missing) is sent, rewritten,
   * when its last line is whole: it ends with a line break, or it is a `data:` line holding
   * `[DONE]` or complete JSON. A last line cut mid-way is not sent: no SSE client can use it, and
   * it may be the start of the usage chunk, which the client must never see.
   */
  end(): Buffer {
    const pending = this.pending;
    this.pending = [];
    this.line = Line.Empty;
    if (pending.length === 0) return EMPTY;
    const event = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
    if (!endsWithWholeLine(event)) return EMPTY;
    const parts: Buffer[] = [];
    this.rewrite(event, parts);
    return parts.length === 0 ? EMPTY : Buffer.concat(parts);
  }

  /** Events seen (the usage chunk included): the relay's estimate of output relayed so far. */
  events = 0;
  /** The stream's terminal `data: [DONE]` was seen. */
  done = false;

  /** Append the client's version of one event (its raw bytes, framing included) to `parts`. */
  private rewrite(event: Buffer, parts: Buffer[]): void {
    this.events++;
    if (event.length <= DONE_EVENT_MAX && event.includes(DONE)) this.done = true;
    let key = event.lastIndexOf(USAGE_KEY);
    while (key !== -1) {
      if (inDataLine(event, key)) {
        let at = skipSpace(event, key + USAGE_KEY.length);
        if (event[at] === COLON) {
          at = skipSpace(event, at + 1);
          if (event[at] === OPEN_BRACE) {
            if (this.isUsageChunk(event)) return; // dropped
          } else if (isNullAt(event, at)) {
            const cut = memberSpan(event, key, at + NULL.length);
            if (cut) {
              parts.push(without(event, cut[0], cut[1]));
              return;
            }
          }
        }
      }
      key = key === 0 ? -1 : event.lastIndexOf(USAGE_KEY, key - 1);
    }
    parts.push(event);
  }

  /** Whether the event is the usage chunk (`choices` empty, `usage` an object); reports the usage. */
  private isUsageChunk(event: Buffer): boolean {
    let decoded: SseEvent | undefined;
    const decoder = new SseDecoder((e) => (decoded ??= e));
    decoder.push(event);
    decoder.end();
    if (!decoded) return false;
    let parsed: unknown;
    try {
      parsed = JSON.parse(decoded.data);
    } catch {
      return false;
    }
    if (!isJsonObject(parsed) || !Array.isArray(parsed.choices) || parsed.choices.length > 0 || !isJsonObject(parsed.usage)) return false;
    this.onUsage?.(parsed.usage);
    return true;
  }
}

/**
 * `bytes` without `[from, to)`, as one buffer: every event of a stream passes here, and one copy
 * costs less than two views joined again by `Buffer.concat`.
 */
function without(bytes: Buffer, from: number, to: number): Buffer {
  if (from === 0) return bytes.subarray(to);
  if (to === bytes.length) return bytes.subarray(0, from);
  const out = Buffer.allocUnsafe(bytes.length - (to - from));
  bytes.copy(out, 0, 0, from);
  bytes.copy(out, from, to);
  return out;
}

function endsWithWholeLine(event: Buffer): boolean {
  const last = event[event.length - 1];
  if (last === LF || last === CR) return true;
  const start = event.lastIndexOf(LF) + 1;
  if (!bytesAt(event, DATA_FIELD, start)) return false;
  let value = start + DATA_FIELD.length;
  if (event[value] === SPACE) value++;
  const text = event.toString('utf8', value);
  if (text === '[DONE]') return true;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Whether `at` lies in a `data:` line of the event. */
function inDataLine(event: Buffer, at: number): boolean {
  const start = at === 0 ? 0 : event.lastIndexOf(LF, at - 1) + 1;
  return bytesAt(event, DATA_FIELD, start);
}

/** Whether `buf` holds `needle` at `at` (false when it would run past the end). Needles are short. */
function bytesAt(buf: Buffer, needle: Buffer, at: number): boolean {
  if (at + needle.length > buf.length) return false;
  for (let i = 0; i < needle.length; i++) if (buf[at + i] !== needle[i]) return false;
  return true;
}

function skipSpace(buf: Buffer, at: number): number {
  while (at < buf.length && (buf[at] === SPACE || buf[at] === TAB)) at++;
  return at;
}

function skipSpaceBack(buf: Buffer, at: number): number {
  while (at >= 0 && (buf[at] === SPACE || buf[at] === TAB)) at--;
  return at;
}

function isNullAt(buf: Buffer, at: number): boolean {
  if (!bytesAt(buf, NULL, at)) return false;
  const next = buf[at + NULL.length];
  return next === undefined || next === COMMA || next === CLOSE_BRACE || next === SPACE || next === TAB || next === CR || next === LF;
}

/**
 * The byte range to cut for the member `"usage": null` (key at `key`, value ending at `end`):
 * with the comma before it, or, as the first member, with the comma (and space) after it.
 * Undefined when the key does not start a member (e.g. it ends an escaped string).
 */
function memberSpan(event: Buffer, key: number, end: number): [number, number] | undefined {
  const before = skipSpaceBack(event, key - 1);
  if (before < 0) return undefined;
  if (event[before] === COMMA) return [before, end];
  if (event[before] !== OPEN_BRACE) return undefined;
  const after = skipSpace(event, end);
  if (event[after] === COMMA) return [key, skipSpace(event, after + 1)];
  if (event[after] === CLOSE_BRACE) return [key, end];
  return undefined;
}
