import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { AdminUnauthorizedError, InvalidApiKeyError, MissingApiKeyError, UnauthenticatedFloodError, type TollgateError } from '../errors/errors.js';

/**
 * The guard against floods and guessing of credentials: failed authentications (a missing or wrong
 * client key on /v1, a missing or wrong admin token on /admin) are counted per client address by
 * @fastify/rate-limit, on the shared Redis when there is one, in one counter for both kinds; past
 * `server.unauthenticated_rpm` a minute the address gets OpenAI's 429. Successful authentications
 * never reach the counter, so they pay nothing for it.
 */
export interface AuthFailureGuard {
  /**
   * Answer an authentication that did not succeed: a wrong or missing key or token is counted,
   * then answered with its refusal or the 429; any other error (a key store that cannot answer,
   * a bug) is answered as it is, uncounted.
   */
  refuse(request: FastifyRequest, refusal: unknown, done: (err?: Error) => void): void;
  /**
   * The 429 when this address is over its limit (as this instance last heard from the counter),
   * whatever it presents: for the admin token, so that a throttled address cannot tell a right
   * guess (200) from a wrong one (429) and go on guessing at full speed.
   */
  throttled(request: FastifyRequest): TollgateError | undefined;
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function isFailedAuthentication(refusal: unknown): refusal is Error {
  return refusal instanceof MissingApiKeyError || refusal instanceof InvalidApiKeyError || refusal instanceof AdminUnauthorizedError;
}

/** Addresses remembered as over the limit are bounded: a flood from many addresses cannot grow it without limit. */
const MAX_REMEMBERED = 10_000;

export async function authFailureGuard(app: FastifyInstance, config: Config): Promise<AuthFailureGuard> {
  const max = config.server.unauthenticated_rpm;
  if (max === 0) return { refuse: (_request, refusal, done) => done(asError(refusal)), throttled: () => undefined };
  await app.register(rateLimit, { global: false, redis: app.redis, nameSpace: `${config.limits.key_prefix}unauthenticated:`, skipOnError: true });
  const count = app.createRateLimit({ max, timeWindow: 60_000 });
  // address → until when (ms) the counter said it is over the limit
  const overUntil = new Map<string, number>();
  const remember = (address: string, ttlMs: number): void => {
    if (overUntil.size >= MAX_REMEMBERED) {
      const now = Date.now();
      for (const [known, until] of overUntil) if (until <= now) overUntil.delete(known);
      if (overUntil.size >= MAX_REMEMBERED) overUntil.clear();
    }
    overUntil.set(address, Date.now() + ttlMs);
  };
  return {
    refuse(request, refusal, done) {
      // Only a wrong or missing key or admin token is a failed authentication. Anything else (a key
      // store that cannot answer, a disabled or expired key, a bug: a 500) is answered as it is,
      // uncounted, so it can never lock a whole address out.
      if (!isFailedAuthentication(refusal)) return done(asError(refusal));
      count(request).then(
        (counted) => {
          if (counted.isAllowed || !counted.isExceeded) return done(refusal);
          remember(request.ip, counted.ttl);
          done(new UnauthenticatedFloodError(counted.ttl));
        },
        // The counter's store failed: answer the authentication error as usual.
        () => done(refusal),
      );
    },
    throttled(request) {
      const until = overUntil.get(request.ip);
      if (until === undefined) return undefined;
      const left = until - Date.now();
      if (left > 0) return new UnauthenticatedFloodError(left);
      overUntil.delete(request.ip);
      return undefined;
    },
  };
}
