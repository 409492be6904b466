import type { DestinationStream, LoggerOptions } from 'pino';

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
