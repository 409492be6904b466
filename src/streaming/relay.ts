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
 * (the generator is pulled only as fast as the client reads). A decoder reads a copy on the
 * side. If the upstream fails mid-stream, the client's stream ends with an in-stream
 * `data: {"error":…}` event; if the client goes away, the upstream body is destroyed.
 */
export function relaySse(upstream: Readable, options: RelayOptions): Readable {
  const { shape } = options;
  let usage: Usage | undefined;
  let completed = false;
  const decoder = new SseDecoder((event) => {
    if (!shape) return;
    usage = usageFromEvent(shape, event) ?? usage;
    if (isTerminalEvent(shape, event)) completed = true;
  });

  async function* pump(): AsyncGenerator<Buffer> {
    let bytes = 0;
    let error: TollgateError | undefined;
    let ended = false;
    try {
      for await (const chunk of upstream as AsyncIterable<Buffer>) {
        decoder.push(chunk);
        bytes += chunk.length;
        yield chunk;
      }
      decoder.end();
      ended = true;
    } catch (err) {
      error = options.mapError(err);
      ended = true;
      const event = Buffer.from(streamErrorEvent(error));
      bytes += event.length;
      yield event;
    } finally {
      if (!upstream.destroyed) upstream.destroy();
      options.onEnd({ completed, clientGone: !ended, error, usage, bytes });
    }
  }

  return Readable.from(pump(), { objectMode: false, highWaterMark: 16 * 1024 });
}
