import { Readable } from 'node:stream';
import { streamErrorEvent, type TollgateError } from '../errors/errors.js';
import type { UsageShape } from '../routes/endpoints.js';
import { isTerminalEvent, usageFromEvent, type Usage } from '../usage/extract.js';
import { SseDecoder } from './sse.js';

/** How a relayed stream ended. Reported exactly once. */
export interface StreamOutcome {
  /** The upstream sent its terminal event (`[DONE]` / `response.completed` …). */
  readonly completed: boolean;
  /** The client went away before the stream ended. */
  readonly clientGone: boolean;
  /** The upstream failed mid-stream; the client got this as an in-stream error event. */
  readonly error: TollgateError | undefined;
  readonly usage: Usage | undefined;
  /** Bytes relayed to the client. */
  readonly bytes: number;
}

export interface RelayOptions {
  readonly shape: UsageShape | undefined;
  /** Map a mid-stream upstream failure to the error the client is told about. */
  readonly mapError: (err: unknown) => TollgateError;
  readonly onEnd: (outcome: StreamOutcome) => void;
}

/**
 * Relay an upstream SSE body to the client chunk by chunk, as it arrives, with backpressure
 * (the upstream is paused while the client's buffer is full). A decoder reads a copy on the
 * side. If the upstream fails mid-stream, the client's stream ends with an in-stream
 * `data: {"error":…}` event; if the client goes away, the upstream body is destroyed at once,
 * even while it is silent.
 */
export function relaySse(upstream: Readable, options: RelayOptions): Readable {
  return new SseRelay(upstream, options);
}

class SseRelay extends Readable {
  private readonly decoder: SseDecoder;
  private usage: Usage | undefined;
  private completed = false;
  private bytes = 0;
  private ended = false;
  private reported = false;

  constructor(
    private readonly upstream: Readable,
    private readonly options: RelayOptions,
  ) {
    super({ highWaterMark: 64 * 1024 });
    const { shape } = options;
    this.decoder = new SseDecoder((event) => {
      if (!shape) return;
      this.usage = usageFromEvent(shape, event) ?? this.usage;
      if (isTerminalEvent(shape, event)) this.completed = true;
    });
    upstream.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      this.bytes += chunk.length;
      if (!this.push(chunk)) upstream.pause();
    });
    upstream.once('end', () => {
      this.decoder.end();
      this.finish(undefined);
    });
    upstream.once('error', (err) => {
      const error = options.mapError(err);
      const event = Buffer.from(streamErrorEvent(error));
      this.bytes += event.length;
      this.push(event);
      this.finish(error);
    });
    upstream.pause();
  }

  override _read(): void {
    if (!this.ended) this.upstream.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.upstream.destroyed) this.upstream.destroy();
    this.report(undefined, !this.ended);
    callback(err);
  }

  private finish(error: TollgateError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.push(null);
    this.report(error, false);
  }

  private report(error: TollgateError | undefined, clientGone: boolean): void {
    if (this.reported) return;
    this.reported = true;
    this.options.onEnd({ completed: this.completed, clientGone, error, usage: this.usage, bytes: this.bytes });
  }
}
