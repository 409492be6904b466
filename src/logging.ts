import type { Bindings, ChildLoggerOptions, Logger, LoggerOptions } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { hundredths } from './util/hundredths.js';

/** Every place a credential can appear in a log object. pino replaces them with [Redacted]. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["api-key"]',
  'headers.cookie',
  'res.headers["set-cookie"]',
  'authorization',
  'apiKey',
  'api_key',
  'key',
  'secret',
  'token',
  'err.config.headers.authorization',
];

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    base: { service: 'tollgate' },
    messageKey: 'msg',
  };
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * Fastify makes a child logger (with the request id) for every request; pino's child creation is
 * a measurable share of a proxy's per-request cost. This one is made on first use only, and a
 * request that logs once through its own methods never builds it at all. Its methods live on the
 * prototype: creating one per request is one small object.
 *
 * Its children are lazy too: Fastify wraps the logger instance it is given in a child of its own
 * (logger-pino.js, for its serializers) and makes each request's logger from that one: a child
 * of a LazyLogger is lazy too, or every request would build a pino child after all.
 */
class LazyLogger {
  #child: FastifyBaseLogger | undefined;
  constructor(
    private readonly parent: Logger | LazyLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  private real(): FastifyBaseLogger {
    if (this.#child) return this.#child;
    const parent = this.parent instanceof LazyLogger ? this.parent.real() : (this.parent as FastifyBaseLogger);
    this.#child = parent.child(this.bindings, this.options);
    return this.#child;
  }
  /** Without building the child, unless its options set a level of their own. */
  isLevelEnabled(level: string): boolean {
    if (this.#child) return (this.#child as unknown as Logger).isLevelEnabled(level);
    if (this.options.level !== undefined) return (this.real() as unknown as Logger).isLevelEnabled(level);
    return this.parent.isLevelEnabled(level);
  }
  get level(): string {
    return this.#child ? this.#child.level : this.parent.level;
  }
  set level(value: string) {
    this.real().level = value;
  }
  child(more: Bindings, moreOptions?: ChildLoggerOptions): FastifyBaseLogger {
    return new LazyLogger(this, more, moreOptions ?? {}) as unknown as FastifyBaseLogger;
  }
  silent(): void {}
}

for (const level of LEVELS) {
  Object.defineProperty(LazyLogger.prototype, level, {
    value(this: LazyLogger, ...args: unknown[]) {
      if (!this.isLevelEnabled(level)) return;
      const real = (this as unknown as { real(): Record<string, (...a: unknown[]) => void> }).real();
      (real[level] as (...a: unknown[]) => void)(...args);
    },
  });
}

/**
 * The root logger as Fastify gets it: the same pino logger (its methods and level, read through
 * the prototype), whose `child` makes a LazyLogger. Fastify calls `child` for each request
 * through its default factory; given a factory of our own instead, it would check the child's
 * seven methods on every request (logger-factory.js: validateLogger, two arrays a request).
 */
export function withLazyChildren(root: Logger): FastifyBaseLogger {
  return Object.create(root, {
    child: {
      value: (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger =>
        new LazyLogger(root, bindings, options ?? {}) as unknown as FastifyBaseLogger,
    },
  }) as FastifyBaseLogger;
}

/** The fields of the one line each request writes. */
export interface RequestLine {
  readonly reqId: string;
  readonly key_id: string | undefined;
  readonly method: string;
  readonly endpoint: string;
  readonly model: string | undefined;
  readonly status: number;
  readonly stream: boolean | undefined;
  readonly stream_end: string | undefined;
  readonly upstream_status: number | undefined;
  /** Milliseconds (written with two decimals). */
  readonly upstream_ms: number | undefined;
  /** The pool's upstream that answered (or failed last) and the attempts made. */
  readonly upstream: string | undefined;
  readonly attempts: number | undefined;
  /** Milliseconds (written with two decimals). */
  readonly total_ms: number;
  readonly input_tokens: number | undefined;
  readonly cached_tokens: number | undefined;
  readonly output_tokens: number | undefined;
  readonly tokens_source: string | undefined;
  readonly cost_usd: number | undefined;
  readonly cost_nano: number | undefined;
  /** Response cache outcome (hit, miss, bypass) for keys with a cache. */
  readonly cache: string | undefined;
  /** A hit: what the stored answer cost, saved. */
  readonly saved_usd: number | undefined;
  readonly saved_nano: number | undefined;
  /** The prompt_cache_key tollgate set (prefix steering). */
  readonly prompt_cache_key: string | undefined;
}

const str = (name: string, value: string | undefined): string => (value === undefined ? '' : `,"${name}":${JSON.stringify(value)}`);
/** tollgate's own values (ids, method, route template, enums): nothing in them needs escaping. */
const own = (name: string, value: string | undefined): string => (value === undefined ? '' : `,"${name}":"${value}"`);
const num = (name: string, value: number | boolean | undefined): string => (value === undefined ? '' : `,"${name}":${value}`);
/** Milliseconds, two decimals (util/hundredths.ts). */
const ms = (name: string, value: number | undefined): string => (value === undefined ? '' : `,"${name}":${hundredths(value)}`);

/**
 * The request line as pino writes an info line (`level`, `time`, the base fields, then the
 * fields and `msg`), built directly: it is written once per request, and pino's generic
 * serialiser and redaction walk cost more than the rest of the logging. Every field is named
 * here, none can hold a credential; strings from outside (key id, model, prompt cache key) are
 * JSON-escaped, tollgate's own (request id, method, route template, enums) and numbers written as they are.
 */
export function requestLine(line: RequestLine): string {
  return (
    `{"level":30,"time":${Date.now()},"service":"tollgate"` +
    own('reqId', line.reqId) +
    str('key_id', line.key_id) +
    own('method', line.method) +
    own('endpoint', line.endpoint) +
    str('model', line.model) +
    num('status', line.status) +
    num('stream', line.stream) +
    own('stream_end', line.stream_end) +
    num('upstream_status', line.upstream_status) +
    ms('upstream_ms', line.upstream_ms) +
    str('upstream', line.upstream) +
    num('attempts', line.attempts) +
    ms('total_ms', line.total_ms) +
    num('input_tokens', line.input_tokens) +
    num('cached_tokens', line.cached_tokens) +
    num('output_tokens', line.output_tokens) +
    own('tokens_source', line.tokens_source) +
    num('cost_usd', line.cost_usd) +
    num('cost_nano', line.cost_nano) +
    own('cache', line.cache) +
    num('saved_usd', line.saved_usd) +
    num('saved_nano', line.saved_nano) +
    str('prompt_cache_key', line.prompt_cache_key) +
    `,"msg":"request"}\n`
  );
}
