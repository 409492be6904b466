import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { streamErrorEvent, type TollgateError } from '../errors/errors.js';
import { readableSource, type BodySource } from '../upstream/call.js';
import type { UsageShape } from '../usage/shape.js';
import { isTerminalEvent, readUsage, usageFromEvent, type Usage } from '../usage/extract.js';
import { SseDecoder } from './sse.js';
import { InjectedUsageStripper } from './usage-injection.js';

/** How a relayed stream ended. Reported exactly once. */
export interface StreamOutcome {
  /** The upstream sent its terminal event (`[DONE]` / `response.completed` …). */
  readonly completed: boolean;
  /** The client went away before the stream ended. */
  readonly clientGone: boolean;
  /** The upstream failed mid-stream; the client got this as an in-stream error event. */
  readonly error: TollgateError | undefined;
  readonly usage: Usage | undefined;
  /** Bytes relayed to the client (after any rewriting). */
  readonly bytes: number;
  /** When the upstream's first body chunk arrived (performance.now()); undefined if none did. */
  readonly firstByteAt: number | undefined;
  /**
   * Events the upstream sent. OpenAI streams about one token per delta event, so for a stream
   * cut without usage this is the estimate of the output relayed so far.
   */
  readonly events: number;
}

export interface RelayOptions {
  readonly shape: UsageShape | undefined;
  /** Map a mid-stream upstream failure to the error the client is told about. */
  readonly mapError: (err: unknown) => TollgateError;
  readonly onEnd: (outcome: StreamOutcome) => void;
  /**
   * Tollgate added `stream_options.include_usage` to the request (the client did not ask): take
   * the usage chunk and the `"usage":null` members out of what the client receives. The side
   * decoder still reads the upstream's original bytes, usage chunk included.
   */
  readonly stripInjectedUsage?: boolean;
  /** Sees every upstream chunk as it arrived, before any rewriting (the response cache's capture). */
  readonly tap?: ((chunk: Buffer) => void) | undefined;
}

export interface PipeEnd {
  /** The upstream body failed; the sink was ended with `errorTail` or destroyed. */
  readonly error: unknown;
  /** The client went away first; the upstream body was destroyed. */
  readonly clientGone: boolean;
  /** Bytes written to the client. */
  readonly bytes: number;
  /** When the upstream's first body chunk arrived (performance.now()); undefined if none did. */
  readonly firstByteAt: number | undefined;
}

export interface PipeOptions {
  /** Sees every upstream chunk as it arrived (before `transform`). */
  readonly tap?: (chunk: Buffer) => void;
  /** Rewrites each upstream chunk into the bytes to write now (possibly none). Without, chunks pass as they are. */
  readonly transform?: (chunk: Buffer) => Buffer | undefined;
  /** At the upstream's clean end: last bytes to write (what `transform` still held back). */
  readonly flush?: () => Buffer | undefined;
  /**
   * Bytes that end the client's response when the upstream fails; without, the response is cut.
   * `midLine`: the last bytes written did not end with a line break.
   */
  readonly errorTail?: (err: unknown, midEvent: boolean) => Buffer | undefined;
  readonly onEnd: (end: PipeEnd) => void;
}

function endsWithBlankLine(bytes: Buffer): boolean {
  const n = bytes.length;
  return n >= 2 && bytes[n - 1] === 0x0a && (bytes[n - 2] === 0x0a || (n >= 4 && bytes[n - 2] === 0x0d && bytes[n - 3] === 0x0a));
}

/**
 * Pipe an upstream body straight into the client's socket (no intermediate stream), with
 * backpressure: the upstream is paused while the client's buffer is full. When the client goes
 * away, the upstream body is destroyed at once, even while it is silent. `onEnd` runs exactly
 * once. The sink's head must already be set (the first write sends it).
 */
export function pipeBody(body: BodySource | Readable, sink: Writable, options: PipeOptions): void {
  const upstream = 'consume' in body ? body : readableSource(body);
  let bytes = 0;
  let firstByteAt: number | undefined;
  let ended = false;
  /** Whether everything written so far ends with a blank line (or nothing was written). */
  let atEventBoundary = true;
  const finish = (error: unknown, clientGone: boolean): void => {
    ended = true;
    options.onEnd({ error, clientGone, bytes, firstByteAt });
  };
  if (sink.destroyed) {
    upstream.destroy();
    finish(undefined, true);
    return;
  }
  const { tap, transform } = options;
  const resume = (): void => {
    upstream.resume();
  };
  upstream.consume({
    data(chunk) {
      firstByteAt ??= performance.now();
      tap?.(chunk);
      const out = transform ? transform(chunk) : chunk;
      if (out === undefined || out.length === 0) return;
      bytes += out.length;
      atEventBoundary = endsWithBlankLine(out);
      if (!sink.write(out)) {
        upstream.pause();
        sink.once('drain', resume);
      }
    },
    end() {
      if (ended) return;
      const last = options.flush?.();
      if (last !== undefined && last.length > 0) {
        bytes += last.length;
        sink.end(last);
      } else {
        sink.end();
      }
      finish(undefined, false);
    },
    error(err) {
      if (ended) return;
      const tail = options.errorTail?.(err, !atEventBoundary);
      if (tail) {
        bytes += tail.length;
        sink.end(tail);
      } else {
        sink.destroy();
      }
      finish(err, false);
    },
  });
  sink.once('close', () => {
    if (ended) return;
    upstream.destroy();
    finish(undefined, true);
  });
}

/**
 * Relay an upstream SSE body to the client chunk by chunk, as it arrives, while a decoder reads
 * a copy on the side for usage and the terminal event. If the upstream fails mid-stream, the
 * client's stream ends with an in-stream `data: {"error":…}` event. With `stripInjectedUsage`,
 * the client gets whole events (each as soon as its blank line arrives) without the usage tollgate
 * asked for; an event the upstream left unfinished when it failed is not sent, so the error event
 * starts on a fresh line.
 */
export function relaySse(upstream: BodySource | Readable, sink: Writable, options: RelayOptions): void {
  const { shape } = options;
  let usage: Usage | undefined;
  let completed = false;
  let events = 0;
  let error: TollgateError | undefined;
  // When tollgate injected include_usage, the stripper already walks every event: it reports the
  // usage chunk, counts events and sees [DONE], so no second decoder reads the stream.
  const stripper = options.stripInjectedUsage
    ? new InjectedUsageStripper((found) => {
        if (shape) usage = readUsage(shape, found);
      })
    : undefined;
  const decoder = stripper
    ? undefined
    : new SseDecoder((event) => {
        events++;
        if (!shape) return;
        usage = usageFromEvent(shape, event) ?? usage;
        if (isTerminalEvent(shape, event)) completed = true;
      });
  const tap = options.tap;
  pipeBody(upstream, sink, {
    tap: tap
      ? (chunk) => {
          decoder?.push(chunk);
          tap(chunk);
        }
      : decoder && ((chunk) => decoder.push(chunk)),
    transform: stripper && ((chunk) => stripper.push(chunk)),
    flush: stripper && (() => stripper.end()),
    errorTail: (err, midEvent) => {
      error = options.mapError(err);
      // Close a half-sent event first, so the error event is parsed on its own.
      return Buffer.from((midEvent ? '\n\n' : '') + streamErrorEvent(error));
    },
    onEnd: (end) => {
      if (!end.error && !end.clientGone) decoder?.end();
      if (stripper) {
        events = stripper.events;
        completed = stripper.done;
      }
      options.onEnd({ completed, clientGone: end.clientGone, error, usage, bytes: end.bytes, firstByteAt: end.firstByteAt, events });
    },
  });
}
