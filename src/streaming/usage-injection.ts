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
  /** What one `push` sends, as ranges of the chunk (and of events joined from earlier chunks). */
  private readonly out = new Pieces();

  constructor(private readonly onUsage?: (usage: JsonObject) => void) {}

  /** Feed one upstream chunk; returns the bytes to send now (empty when the chunk ends mid-event). */
  push(chunk: Buffer): Buffer {
    const out = this.out;
    // Nothing left over from a push that threw part-way.
    out.clear();
    let eventStart = 0;
    let lineStart = 0;
    /** Where the first line of the event being read ends in this chunk (-2: not yet; -1: it began in an earlier chunk). */
    let firstLineEnd = this.pending.length === 0 && this.line === Line.Empty ? -2 : -1;
    let lf = chunk.indexOf(LF);
    while (lf !== -1) {
      if (firstLineEnd === -2) firstLineEnd = lf;
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
        if (this.pending.length === 0) {
          // The common case: the event lies whole in this chunk, read where it is.
          this.rewrite(chunk, eventStart, lineStart, firstLineEnd, out);
        } else {
          const event = Buffer.concat([...this.pending, chunk.subarray(eventStart, lineStart)]);
          this.pending = [];
          this.rewrite(event, 0, event.length, -1, out);
        }
        eventStart = lineStart;
        firstLineEnd = -2;
      }
      lf = chunk.indexOf(LF, lineStart);
    }
    // Keep a copy: the caller may reuse or release the chunk's memory.
    if (eventStart < chunk.length) this.pending.push(Buffer.from(chunk.subarray(eventStart)));
    const rest = chunk.length - lineStart;
    if (rest > 0) this.line = this.line === Line.Empty && rest === 1 && chunk[lineStart] === CR ? Line.Cr : Line.Text;
    return out.take(chunk);
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
    this.out.clear();
    this.rewrite(event, 0, event.length, -1, this.out);
    return this.out.take();
  }

  /** Events seen (the usage chunk included): the relay's estimate of output relayed so far. */
  events = 0;
  /** The stream's terminal `data: [DONE]` was seen. */
  done = false;

  /**
   * Add the client's version of one event (`buf[start, end)`, its raw bytes, framing included) to
   * `out`. `firstLineEnd`: where its first line ends (its LF), -1 when not known.
   */
  private rewrite(buf: Buffer, start: number, end: number, firstLineEnd: number, out: Pieces): void {
    this.events++;
    if (end - start <= DONE_EVENT_MAX && indexOfIn(buf, DONE, start, end) !== -1) this.done = true;
    let key = lastIndexOfIn(buf, USAGE_KEY, start, end);
    while (key !== -1) {
      // An event of one line (as upstreams send them): in a data line if the event starts with one.
      if (key < firstLineEnd ? bytesAt(buf, DATA_FIELD, start, end) : inDataLine(buf, start, end, key)) {
        let at = skipSpace(buf, key + USAGE_KEY.length, end);
        if (buf[at] === COLON && at < end) {
          at = skipSpace(buf, at + 1, end);
          if (buf[at] === OPEN_BRACE && at < end) {
            if (this.isUsageChunk(buf, start, end)) return; // dropped
          } else if (isNullAt(buf, at, end)) {
            // Cut the member with the comma before it, or, as the first member, with the comma
            // (and space) after it; nothing when the key does not start a member (it ends a string).
            const valueEnd = at + NULL.length;
            const before = skipSpaceBack(buf, key - 1, start);
            if (before >= start && buf[before] === COMMA) {
              out.add(buf, start, before);
              out.add(buf, valueEnd, end);
              return;
            }
            if (before >= start && buf[before] === OPEN_BRACE) {
              const after = skipSpace(buf, valueEnd, end);
              if (after < end && (buf[after] === COMMA || buf[after] === CLOSE_BRACE)) {
                out.add(buf, start, key);
                out.add(buf, buf[after] === COMMA ? skipSpace(buf, after + 1, end) : valueEnd, end);
                return;
              }
            }
          }
        }
      }
      key = key === start ? -1 : lastIndexOfIn(buf, USAGE_KEY, start, key - 1 + USAGE_KEY.length);
    }
    out.add(buf, start, end);
  }

  /** Whether the event `buf[start, end)` is the usage chunk (`choices` empty, `usage` an object); reports the usage. */
  private isUsageChunk(buf: Buffer, start: number, end: number): boolean {
    let data = singleDataLine(buf, start, end);
    if (data === undefined) {
      // Several lines (or fields): the SSE rules join them.
      let decoded: SseEvent | undefined;
      const decoder = new SseDecoder((e) => (decoded ??= e));
      decoder.push(buf.subarray(start, end));
      decoder.end();
      if (!decoded) return false;
      data = decoded.data;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return false;
    }
    if (!isJsonObject(parsed) || !Array.isArray(parsed.choices) || parsed.choices.length > 0 || !isJsonObject(parsed.usage)) return false;
    this.onUsage?.(parsed.usage);
    return true;
  }
}

/**
 * The bytes one `push` sends, gathered as ranges of source buffers and joined once at the end:
 * a chunk of twenty events, each with its `"usage":null` cut, becomes one buffer (a copy per event
 * and a join of them all would allocate twenty-one). A chunk with nothing to cut is passed on as
 * it is.
 */
class Pieces {
  private readonly buffers: Buffer[] = [];
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private count = 0;
  private size = 0;

  add(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const last = this.count - 1;
    if (last >= 0 && this.buffers[last] === buf && this.ends[last] === start) {
      this.ends[last] = end;
    } else {
      this.buffers[last + 1] = buf;
      this.starts[last + 1] = start;
      this.ends[last + 1] = end;
      this.count = last + 2;
    }
    this.size += end - start;
  }

  /** Forget every range; no chunk is held past its push (the arrays keep their length for the next). */
  clear(): void {
    for (let i = 0; i < this.count; i++) this.buffers[i] = EMPTY;
    this.count = 0;
    this.size = 0;
  }

  private allFrom(chunk: Buffer): boolean {
    for (let i = 0; i < this.count; i++) if (this.buffers[i] !== chunk) return false;
    return true;
  }

  /**
   * The bytes added since the last `take`, as one buffer (the source itself when it is one whole
   * buffer). `chunk`: the buffer most ranges come from; when all do, it is copied whole once and
   * the ranges moved together within the copy (copying each range on its own builds a typed array
   * view of it first, and a chunk has a range per event).
   */
  take(chunk?: Buffer): Buffer {
    const n = this.count;
    if (n === 0) return EMPTY;
    const buffers = this.buffers;
    let joined: Buffer;
    if (n === 1) {
      const buf = buffers[0] as Buffer;
      const start = this.starts[0] as number;
      const end = this.ends[0] as number;
      joined = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    } else if (chunk !== undefined && this.allFrom(chunk)) {
      joined = Buffer.allocUnsafe(chunk.length);
      chunk.copy(joined, 0);
      // Each range moves left (or stays): no byte is overwritten before it has moved.
      let at = this.ends[0] as number;
      for (let i = 1; i < n; i++) {
        const start = this.starts[i] as number;
        const end = this.ends[i] as number;
        joined.copyWithin(at, start, end);
        at += end - start;
      }
      joined = joined.subarray(this.starts[0] as number, at);
    } else {
      joined = Buffer.allocUnsafe(this.size);
      let at = 0;
      for (let i = 0; i < n; i++) at += (buffers[i] as Buffer).copy(joined, at, this.starts[i], this.ends[i]);
    }
    this.clear();
    return joined;
  }
}

function endsWithWholeLine(event: Buffer): boolean {
  const last = event[event.length - 1];
  if (last === LF || last === CR) return true;
  const start = event.lastIndexOf(LF) + 1;
  if (!bytesAt(event, DATA_FIELD, start, event.length)) return false;
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

/**
 * The data of an event that is one `data:` line and its blank line (as upstreams send them), or
 * undefined for any other form.
 */
function singleDataLine(buf: Buffer, start: number, end: number): string | undefined {
  if (!bytesAt(buf, DATA_FIELD, start, end)) return undefined;
  let lineEnd = start;
  while (lineEnd < end && buf[lineEnd] !== LF) lineEnd++;
  // What follows the line: only its blank line (LF or CR LF).
  const rest = end - lineEnd;
  if (!((rest === 2 && buf[lineEnd + 1] === LF) || (rest === 3 && buf[lineEnd + 1] === CR && buf[lineEnd + 2] === LF))) return undefined;
  if (buf[lineEnd - 1] === CR) lineEnd--;
  let value = start + DATA_FIELD.length;
  if (value < lineEnd && buf[value] === SPACE) value++;
  return buf.toString('utf8', value, lineEnd);
}

// The searches below run on every event of a stream, over a range of the chunk: plain loops over
// the bytes, as the range is short and the needle near its end (Buffer's own searches would need
// a view of the range, and cost a call into C++ each).

/** The first `needle` lying whole in `buf[start, end)`, or -1. */
function indexOfIn(buf: Buffer, needle: Buffer, start: number, end: number): number {
  for (let i = start; i + needle.length <= end; i++) if (bytesAt(buf, needle, i, end)) return i;
  return -1;
}

/** The last `needle` lying whole in `buf[start, end)`, or -1. */
function lastIndexOfIn(buf: Buffer, needle: Buffer, start: number, end: number): number {
  const first = needle[0];
  for (let i = end - needle.length; i >= start; i--) if (buf[i] === first && bytesAt(buf, needle, i, end)) return i;
  return -1;
}

/** Whether `at` lies in a `data:` line of the event `buf[start, end)`. */
function inDataLine(buf: Buffer, start: number, end: number, at: number): boolean {
  let lineStart = at;
  while (lineStart > start && buf[lineStart - 1] !== LF) lineStart--;
  return bytesAt(buf, DATA_FIELD, lineStart, end);
}

/** Whether `buf` holds `needle` at `at`, before `end`. Needles are short. */
function bytesAt(buf: Buffer, needle: Buffer, at: number, end: number): boolean {
  if (at + needle.length > end) return false;
  for (let i = 0; i < needle.length; i++) if (buf[at + i] !== needle[i]) return false;
  return true;
}

function skipSpace(buf: Buffer, at: number, end: number): number {
  while (at < end && (buf[at] === SPACE || buf[at] === TAB)) at++;
  return at;
}

function skipSpaceBack(buf: Buffer, at: number, start: number): number {
  while (at >= start && (buf[at] === SPACE || buf[at] === TAB)) at--;
  return at;
}

function isNullAt(buf: Buffer, at: number, end: number): boolean {
  if (!bytesAt(buf, NULL, at, end)) return false;
  const next = at + NULL.length < end ? buf[at + NULL.length] : undefined;
  return next === undefined || next === COMMA || next === CLOSE_BRACE || next === SPACE || next === TAB || next === CR || next === LF;
}
