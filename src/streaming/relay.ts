import type { Readable, Writable } from 'node:stream';
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
 * Relay an upstream SSE body to the client chunk by chunk, as it arrives, straight into the
 * client's socket (no intermediate stream), with backpressure: the upstream is paused while the
 * client's buffer is full. A decoder reads a copy on the side. If the upstream fails mid-stream,
 * the client's stream ends with an in-stream `data: {"error":…}` event; if the client goes
 * away, the upstream body is destroyed at once, even while it is silent. The sink's head must
 * already be set (the first write sends it).
 */
export function relaySse(upstream: Readable, sink: Writable, options: RelayOptions): void {
  const { shape } = options;
  let usage: Usage | undefined;
  let completed = false;
  let bytes = 0;
  let ended = false;
  let reported = false;
  const decoder = new SseDecoder((event) => {
    if (!shape) return;
    usage = usageFromEvent(shape, event) ?? usage;
    if (isTerminalEvent(shape, event)) completed = true;
  });
  const report = (error: TollgateError | undefined, clientGone: boolean): void => {
    if (reported) return;
    reported = true;
    options.onEnd({ completed, clientGone, error, usage, bytes });
  };
  const resume = (): void => {
    upstream.resume();
  };

  if (sink.destroyed) {
    upstream.destroy();
    report(undefined, true);
    return;
  }
  upstream.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    bytes += chunk.length;
    if (!sink.write(chunk)) {
      upstream.pause();
      sink.once('drain', resume);
    }
  });
  upstream.once('end', () => {
    ended = true;
    decoder.end();
    sink.end();
    report(undefined, false);
  });
  upstream.once('error', (err) => {
    if (ended) return;
    ended = true;
    const error = options.mapError(err);
    const event = Buffer.from(streamErrorEvent(error));
    bytes += event.length;
    sink.end(event);
    report(error, false);
  });
  sink.once('close', () => {
    if (ended) return;
    ended = true;
    upstream.destroy();
    report(undefined, true);
  });
}
