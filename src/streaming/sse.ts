/**
 * A side-channel decoder for Server-Sent Events. It is fed the same byte chunks that go to the
 * client, in whatever pieces the network cut them, and emits whole events. Lines are split on
 * LF bytes before decoding, and LF never occurs inside a UTF-8 sequence, so a character split
 * across chunks is reassembled intact.
 */

export interface SseEvent {
  /** The `event:` field; undefined for unnamed events (chat completions). */
  readonly event: string | undefined;
  /** The `data:` lines joined with LF. */
  readonly data: string;
}

const LF = 0x0a;

export class SseDecoder {
  private pending: Buffer[] = [];
  private event: string | undefined;
  private data: string[] = [];

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    let newline = chunk.indexOf(LF, start);
    while (newline !== -1) {
      const piece = chunk.subarray(start, newline);
      if (this.pending.length > 0) {
        this.pending.push(piece);
        this.line(Buffer.concat(this.pending).toString('utf8'));
        this.pending = [];
      } else {
        this.line(piece.toString('utf8'));
      }
      start = newline + 1;
      newline = chunk.indexOf(LF, start);
    }
    if (start < chunk.length) this.pending.push(chunk.subarray(start));
  }

  /** The stream ended: a final event without its blank line still counts. */
  end(): void {
    if (this.pending.length > 0) {
      this.line(Buffer.concat(this.pending).toString('utf8'));
      this.pending = [];
    }
    this.dispatch();
  }

  private line(raw: string): void {
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (text === '') {
      this.dispatch();
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
  }

  private dispatch(): void {
    if (this.data.length > 0) this.onEvent({ event: this.event, data: this.data.join('\n') });
    this.event = undefined;
    this.data = [];
  }
}
