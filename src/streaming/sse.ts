/**
 * A side-channel decoder for Server-Sent Events. It is fed the same byte chunks that go to the
 * client, in whatever pieces the network cut them, and emits whole events. Lines are split on
 * LF bytes, and LF never occurs inside a UTF-8 sequence, so a character split across chunks is
 * reassembled intact. Event data stays bytes until a consumer asks for the text: most events of
 * a stream are only ever tested with a byte search, never decoded.
 */

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const DATA = Buffer.from('data');
const EVENT = Buffer.from('event');
const EMPTY = Buffer.alloc(0);

export class SseEvent {
  private text: string | undefined;

  constructor(
    /** The `event:` field; undefined for unnamed events (chat completions). */
    readonly event: string | undefined,
    /** The `data:` lines joined with LF, as bytes. */
    readonly dataBytes: Buffer,
  ) {}

  /** The `data:` lines joined with LF, decoded on first use. */
  get data(): string {
    this.text ??= this.dataBytes.toString('utf8');
    return this.text;
  }

  /** Whether the data contains this ASCII/UTF-8 text (a byte search, no decoding). */
  dataIncludes(needle: string | Buffer): boolean {
    return this.dataBytes.includes(needle);
  }
}

export class SseDecoder {
  private pending: Buffer[] = [];
  private event: string | undefined;
  private data: Buffer[] = [];

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(LF, start);
    while (newline !== -1) {
      const piece = chunk.subarray(start, newline);
      if (this.pending.length > 0) {
        this.pending.push(piece);
        this.line(Buffer.concat(this.pending));
        this.pending = [];
      } else {
        this.line(piece);
      }
      start = newline + 1;
      newline = chunk.indexOf(LF, start);
    }
    // Keep a copy: the caller may reuse or release the chunk's memory.
    if (start < chunk.length) this.pending.push(Buffer.from(chunk.subarray(start)));
  }

  /** The stream ended: a final event without its blank line still counts. */
  end(): void {
    if (this.pending.length > 0) {
      this.line(Buffer.concat(this.pending));
      this.pending = [];
    }
    this.dispatch();
  }

  private line(raw: Buffer): void {
    const length = raw.length > 0 && raw[raw.length - 1] === CR ? raw.length - 1 : raw.length;
    if (length === 0) {
      this.dispatch();
      return;
    }
    if (raw[0] === COLON) return;
    let colon = raw.indexOf(COLON);
    if (colon === -1 || colon > length) colon = length;
    let valueStart = colon + 1;
    if (valueStart < length && raw[valueStart] === SPACE) valueStart++;
    const value = valueStart <= length ? raw.subarray(valueStart, length) : EMPTY;
    if (colon === DATA.length && raw.compare(DATA, 0, DATA.length, 0, colon) === 0) this.data.push(value);
    else if (colon === EVENT.length && raw.compare(EVENT, 0, EVENT.length, 0, colon) === 0) this.event = value.toString('utf8');
  }

  private dispatch(): void {
    if (this.data.length > 0) {
      const bytes = this.data.length === 1 ? (this.data[0] as Buffer) : joinLines(this.data);
      this.onEvent(new SseEvent(this.event, bytes));
    }
    this.event = undefined;
    this.data = [];
  }
}

function joinLines(lines: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  lines.forEach((line, i) => {
    if (i > 0) parts.push(Buffer.from('\n'));
    parts.push(line);
  });
  return Buffer.concat(parts);
}
