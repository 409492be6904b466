import { estimateTokens, promptChars } from '../tokens/estimate.js';

/**
 * Counts the tokens of a Batch API input file (JSONL) while it streams past, chunk by chunk,
 * without ever holding more than one line. Each line is `{custom_id, method, url, body}`.
 *
 * What is counted, per model (`body.model`, resolved through the catalogue so aliases share one
 * figure):
 * - `tokens`: the estimated **input** tokens, `estimateTokens(promptChars(body))` summed over the
 *   lines. This is what OpenAI's batch queue limit counts ("total input tokens of the model's
 *   pending batches") and what `POST /v1/batches` reserves.
 * - `outputCap`: the sum of the lines' output caps (`max_completion_tokens`, `max_tokens`,
 *   `max_output_tokens`; 0 when none). Recorded for information; not reserved, as at OpenAI.
 * - `requests`: the number of lines.
 *
 * Lines are split on the byte 0x0A, which never occurs inside a multi-byte UTF-8 sequence, and
 * decoded only once whole, so chunk boundaries anywhere (inside a character too) do not matter.
 * `\r\n` endings, blank lines and a leading byte-order mark are accepted.
 *
 * A file is `valid` only when every non-blank line is a JSON object whose `body` is an object
 * naming a `model` (string, at most 256 characters), with at most 16 distinct models (OpenAI
 * takes one per file). OpenAI fails a batch whose input file breaks those rules at validation, so
 * an invalid file is never reserved against; the counter stops at the first bad line (and at once
 * when the file does not start with `{`: binary uploads cost nothing).
 *
 * A line longer than `maxLineBytes` is not buffered: its bytes are counted as they pass
 * (bytes / chars_per_token, an upper bound of its characters) and attributed to the model named
 * in its first bytes, else to the file's most frequent model.
 */

export interface ModelCount {
  readonly model: string;
  readonly tokens: number;
  readonly outputCap: number;
  readonly requests: number;
}

export interface JsonlCount {
  readonly valid: boolean;
  /** Non-blank lines seen. */
  readonly lines: number;
  /** Per model, in order of first appearance. Empty when the file is not valid. */
  readonly models: readonly ModelCount[];
}

export interface JsonlCounterOptions {
  readonly charsPerToken: number;
  /** Model identity for a line's `body.model` (default: as written). */
  readonly resolveModel?: (model: string) => string;
  /** Longest line buffered whole (default 32 MiB). */
  readonly maxLineBytes?: number;
}

const NEWLINE = 0x0a;
/** Bytes of an overlong line kept to find its model. */
const HEAD_BYTES = 64 * 1024;
const OUTPUT_CAP_FIELDS = ['max_completion_tokens', 'max_tokens', 'max_output_tokens'] as const;
const MODEL_IN_HEAD = /"model"\s*:\s*"((?:[^"\\]|\\.)*)"/;
/** OpenAI takes one model per batch file; more than this many is no batch file (and bounds the record). */
const MAX_MODELS = 16;
const MAX_MODEL_LENGTH = 256;

interface MutableCount {
  tokens: number;
  outputCap: number;
  requests: number;
}

export class JsonlTokenCounter {
  private readonly charsPerToken: number;
  private readonly resolveModel: (model: string) => string;
  private readonly maxLineBytes: number;
  private readonly counts = new Map<string, MutableCount>();
  /** The current line's bytes so far (pieces of the chunks, joined once the line ends). */
  private pieces: Buffer[] = [];
  private pendingBytes = 0;
  /** The current line outgrew maxLineBytes: only its head is kept, its bytes counted. */
  private overflow: { head: Buffer; bytes: number } | undefined;
  /** Tokens of overlong lines whose model could not be read, attributed at the end. */
  private unattributed: MutableCount = { tokens: 0, outputCap: 0, requests: 0 };
  private started = false;
  private invalid = false;
  private lines = 0;
  private ended: JsonlCount | undefined;

  constructor(options: JsonlCounterOptions) {
    this.charsPerToken = options.charsPerToken;
    this.resolveModel = options.resolveModel ?? ((model) => model);
    this.maxLineBytes = options.maxLineBytes ?? 32 * 1024 * 1024;
  }

  /** False once the file is known not to be a valid batch file (nothing more needs reading). */
  get viable(): boolean {
    return !this.invalid;
  }

  push(chunk: Buffer): void {
    if (this.invalid || this.ended) return;
    let start = 0;
    if (!this.started) {
      start = this.firstContent(chunk);
      if (this.invalid || start === chunk.length) return;
    }
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.hold(chunk.subarray(start));
        return;
      }
      this.hold(chunk.subarray(start, newline));
      this.endLine();
      if (this.invalid) return;
      start = newline + 1;
    }
  }

  /** The file ended: count its last line (a final newline is optional) and report. */
  end(): JsonlCount {
    if (this.ended) return this.ended;
    if (!this.invalid && (this.pendingBytes > 0 || this.overflow)) this.endLine();
    if (!this.invalid && this.unattributed.requests > 0) {
      // Overlong lines without a readable model go to the file's most frequent model.
      let target: MutableCount | undefined;
      for (const count of this.counts.values()) if (!target || count.requests > target.requests) target = count;
      if (target) {
        target.tokens += this.unattributed.tokens;
        target.requests += this.unattributed.requests;
      } else {
        this.invalid = true;
      }
    }
    const valid = !this.invalid && this.lines > 0;
    this.ended = {
      valid,
      lines: this.lines,
      models: valid ? [...this.counts].map(([model, c]) => ({ model, tokens: c.tokens, outputCap: c.outputCap, requests: c.requests })) : [],
    };
    this.pieces = [];
    return this.ended;
  }

  /** Skip leading whitespace and a byte-order mark; the first content byte must open an object. */
  private firstContent(chunk: Buffer): number {
    let i = 0;
    while (i < chunk.length) {
      const byte = chunk[i] as number;
      if (byte === 0x20 || byte === 0x09 || byte === 0x0d || byte === 0x0a || byte === 0xef || byte === 0xbb || byte === 0xbf) {
        i++;
        continue;
      }
      this.started = true;
      if (byte !== 0x7b /* { */) this.invalid = true;
      return i;
    }
    return i;
  }

  private hold(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.overflow) {
      this.overflow.bytes += piece.length;
      return;
    }
    if (this.pendingBytes + piece.length <= this.maxLineBytes) {
      this.pieces.push(piece);
      this.pendingBytes += piece.length;
      return;
    }
    const sofar = Buffer.concat([...this.pieces, piece]);
    this.overflow = { head: Buffer.from(sofar.subarray(0, HEAD_BYTES)), bytes: sofar.length };
    this.pieces = [];
    this.pendingBytes = 0;
  }

  private endLine(): void {
    const overflow = this.overflow;
    const bytes = overflow ? undefined : this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces);
    this.pieces = [];
    this.pendingBytes = 0;
    this.overflow = undefined;
    if (overflow) {
      this.lines++;
      this.countOverlong(overflow.head, overflow.bytes);
      return;
    }
    // The leading byte-order mark was skipped with the leading whitespace (firstContent).
    const text = (bytes as Buffer).toString('utf8').trim();
    if (text.length === 0) return;
    this.lines++;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      this.invalid = true;
      return;
    }
    const body = isObject(line) ? line.body : undefined;
    if (!isObject(body) || typeof body.model !== 'string') {
      this.invalid = true;
      return;
    }
    let outputCap = 0;
    for (const field of OUTPUT_CAP_FIELDS) {
      const value = body[field];
      if (typeof value === 'number' && Number.isFinite(value) && value > 0) {
        outputCap = Math.floor(value);
        break;
      }
    }
    this.add(this.resolveModel(body.model), estimateTokens(promptChars(body), this.charsPerToken), outputCap);
  }

  private countOverlong(head: Buffer, bytes: number): void {
    const tokens = Math.ceil(bytes / this.charsPerToken);
    const found = MODEL_IN_HEAD.exec(head.toString('utf8'));
    let model: string | undefined;
    if (found) {
      try {
        model = JSON.parse(`"${found[1] as string}"`) as string;
      } catch {
        model = undefined;
      }
    }
    if (model === undefined) {
      this.unattributed.tokens += tokens;
      this.unattributed.requests += 1;
      return;
    }
    this.add(this.resolveModel(model), tokens, 0);
  }

  private add(model: string, tokens: number, outputCap: number): void {
    const count = this.counts.get(model);
    if (!count && (this.counts.size >= MAX_MODELS || model.length === 0 || model.length > MAX_MODEL_LENGTH)) {
      this.invalid = true;
      return;
    }
    if (count) {
      count.tokens += tokens;
      count.outputCap += outputCap;
      count.requests += 1;
    } else {
      this.counts.set(model, { tokens, outputCap, requests: 1 });
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
