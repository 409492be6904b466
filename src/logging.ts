import type { Bindings, ChildLoggerOptions, DestinationStream, Logger, LoggerOptions } from 'pino';
import type { FastifyBaseLogger } from 'fastify';

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

export interface LoggingOptions {
  readonly level: string;
  readonly stream?: DestinationStream | undefined;
}

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
 */
class LazyLogger {
  #child: FastifyBaseLogger | undefined;
  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  private real(): FastifyBaseLogger {
    return (this.#child ??= this.parent.child(this.bindings, this.options));
  }
  get level(): string {
    return this.#child ? this.#child.level : this.parent.level;
  }
  set level(value: string) {
    this.real().level = value;
  }
  child(more: Bindings, moreOptions?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(more, moreOptions);
  }
  silent(): void {}
}

for (const level of LEVELS) {
  Object.defineProperty(LazyLogger.prototype, level, {
    value(this: LazyLogger, ...args: unknown[]) {
      const parent = (this as unknown as { parent: Logger }).parent;
      if (!parent.isLevelEnabled(level)) return;
      const real = (this as unknown as { real(): Record<string, (...a: unknown[]) => void> }).real();
      (real[level] as (...a: unknown[]) => void)(...args);
    },
  });
}

export function lazyChildLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
}
