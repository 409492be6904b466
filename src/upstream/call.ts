import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { clientHead, type ClientHead } from './headers.js';

/** Who reads a body: called with each chunk, then once with its end or its failure. */
export interface BodyConsumer {
  data(chunk: Buffer): void;
  end(): void;
  error(error: Error): void;
}

/**
 * What the answer side reads an upstream body through: plain calls, no events. The upstream's
 * own bodies are `UpstreamCall`s, which skip the stream machinery; `readableSource` adapts a
 * Readable (tests, other sources).
 */
export interface BodySource {
  /** Start reading; the consumer's calls come after this returns. */
  consume(consumer: BodyConsumer): void;
  pause(): void;
  resume(): void;
  /** Stop reading (an open upstream request is aborted); with an error, the consumer hears of it. */
  destroy(error?: Error): void;
}

export function readableSource(readable: Readable): BodySource {
  return {
    consume(consumer) {
      readable.on('data', (chunk: Buffer) => consumer.data(chunk));
      readable.once('end', () => consumer.end());
      readable.once('error', (error) => consumer.error(error));
    },
    pause: () => void readable.pause(),
    resume: () => void readable.resume(),
    destroy(error) {
      // Nobody may listen for the abort error a destroyed body can still emit.
      if (!error) readable.on('error', () => undefined);
      readable.destroy(error);
    },
  };
}

/** The response head, handed over when the upstream's headers arrive. */
export interface CallHead {
  readonly status: number;
  /** The headers as the client gets them, read at once from undici's raw list. */
  readonly head: ClientHead;
}

export class UpstreamAbortedError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('The upstream request was aborted');
  }
}

/**
 * One upstream request, driven by undici's dispatcher directly: it is the dispatch handler and,
 * once the head has arrived, the response body as a `BodySource`. Chunks are handed on as undici
 * parses them, without a Readable in between; backpressure pauses the socket through undici.
 * Bytes that arrive before a consumer attaches are held (the whole of a small answer often
 * arrives with its head) and handed over, in order, once it has.
 */
export class UpstreamCall implements BodySource, Dispatcher.DispatchHandler {
  #consumer: BodyConsumer | undefined;
  #abort: ((reason: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #onHead: ((head: CallHead) => void) | undefined;
  #onFail: ((error: Error) => void) | undefined;
  #held: Buffer[] | undefined;
  #flowing = false;
  #paused = false;
  /** 0 open, 1 ended, 2 failed, 3 destroyed. */
  #state = 0;
  #error: Error | undefined;
  #endHeld = false;

  constructor(onHead: (head: CallHead) => void, onFail: (error: Error) => void) {
    this.#onHead = onHead;
    this.#onFail = onFail;
  }

  // ---- undici's dispatch handler -------------------------------------------------------------

  onConnect(abort: (reason?: Error) => void): void {
    if (this.#state === 3) abort(this.#error ?? new UpstreamAbortedError());
    else this.#abort = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx informational answers (100 Continue, 103 Early Hints) are not the response.
    if (status < 200) return true;
    this.#resume = resume;
    const onHead = this.#onHead;
    this.#onHead = this.#onFail = undefined;
    // The raw list views undici's socket buffer: read it now and let it go.
    onHead?.({ status, head: clientHead(rawHeaders) });
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#state !== 0) return false;
    if (!this.#flowing || this.#held) {
      (this.#held ??= []).push(chunk);
      // Before a consumer attaches, hold what comes; while held bytes wait on a paused consumer,
      // pause the socket too.
      return !this.#flowing || !this.#paused;
    }
    (this.#consumer as BodyConsumer).data(chunk);
    return !this.#paused;
  }

  onComplete(): void {
    if (this.#state !== 0) return;
    this.#state = 1;
    this.#abort = this.#resume = undefined;
    if (!this.#flowing || this.#held) this.#endHeld = true;
    else this.#finish('end');
  }

  /**
   * The last call to the consumer, after every reference is let go. undici may keep its handler (this
   * object) a while after the response; it must not keep the consumer's closures, and through
   * them the client's response and the buffered bytes, alive with it.
   */
  #finish(event: 'end' | 'error', error?: Error): void {
    const consumer = this.#consumer as BodyConsumer;
    this.#consumer = undefined;
    this.#held = undefined;
    this.#abort = this.#resume = undefined;
    if (event === 'end') consumer.end();
    else consumer.error(error as Error);
  }

  onError(error: Error): void {
    if (this.#onFail) {
      const onFail = this.#onFail;
      this.#onHead = this.#onFail = undefined;
      this.#state = 2;
      onFail(error);
      return;
    }
    if (this.#state !== 0) return;
    this.#state = 2;
    this.#error = error;
    this.#abort = this.#resume = undefined;
    if (this.#flowing && !this.#held) this.#finish('error', error);
  }

  // ---- the body, as a BodySource -------------------------------------------------------------

  consume(consumer: BodyConsumer): void {
    if (this.#flowing) throw new Error('an upstream body is read once');
    this.#flowing = true;
    this.#consumer = consumer;
    // Hand over what is held once the consumer's setup has finished.
    if (this.#held || this.#state !== 0) queueMicrotask(() => this.#drain());
  }

  #drain(): void {
    const held = this.#held;
    if (held) {
      while (held.length > 0 && this.#state !== 3) {
        if (this.#paused) return;
        (this.#consumer as BodyConsumer).data(held.shift() as Buffer);
      }
      this.#held = undefined;
    }
    if (this.#state === 3) return;
    if (this.#endHeld) {
      this.#endHeld = false;
      this.#finish('end');
    } else if (this.#state === 2 && this.#error) {
      const error = this.#error;
      this.#error = undefined;
      this.#finish('error', error);
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#held || this.#endHeld || (this.#state === 2 && this.#error)) this.#drain();
    if (this.#state === 0) this.#resume?.();
  }

  /** Stop reading: the upstream request is aborted (if still open) and the consumer hears nothing more (but the error given). */
  destroy(error?: Error): void {
    if (this.#state === 3) return;
    const open = this.#state === 0;
    this.#state = 3;
    this.#error = error;
    this.#held = undefined;
    this.#endHeld = false;
    const abort = this.#abort;
    this.#abort = this.#resume = undefined;
    if (open) abort?.(error ?? new UpstreamAbortedError());
    const consumer = this.#consumer;
    this.#consumer = undefined;
    if (error) consumer?.error(error);
  }
}
