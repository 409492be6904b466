import { hash, randomBytes } from 'node:crypto';
import type { RedisClient } from '../plugins/redis.js';

/**
 * Ephemeral client secrets minted by tollgate (`ek_…`): a browser opens `/v1/realtime` with one
 * instead of a long-lived key. Held only as a SHA-256 digest (the lookup key), bound to the key that
 * minted it and the session settings it asked for, and taken exactly once: Redis GETDEL (atomic
 * across instances) when Redis is configured, else process memory.
 */
export interface EphemeralGrant {
  readonly keyId: string;
  /** The `session` of the mint request, applied upstream at connect (session.update). */
  readonly session: Record<string, unknown>;
  /** The model the session was minted for. */
  readonly model: string;
  readonly expiresAtMs: number;
}

export interface EphemeralSecrets {
  mint(grant: EphemeralGrant): Promise<string>;
  /** The grant of a secret, once; undefined when unknown, used or expired. */
  take(secret: string): Promise<EphemeralGrant | undefined>;
  close(): void;
}

export const EPHEMERAL_PREFIX = 'ek_';

function digest(secret: string): string {
  return hash('sha256', secret, 'hex');
}

export function createEphemeralSecrets(redis: RedisClient | undefined, keyPrefix: string, clock: () => number = Date.now): EphemeralSecrets {
  const memory = new Map<string, EphemeralGrant>();
  const sweep = setInterval(() => {
    const now = clock();
    for (const [key, grant] of memory) if (grant.expiresAtMs <= now) memory.delete(key);
  }, 60_000);
  sweep.unref();
  const redisKey = (d: string): string => `${keyPrefix}ek:{${d}}`;
  const live = (grant: EphemeralGrant | undefined): EphemeralGrant | undefined => (grant && grant.expiresAtMs > clock() ? grant : undefined);
  return {
    async mint(grant) {
      const secret = `${EPHEMERAL_PREFIX}${randomBytes(24).toString('base64url')}`;
      const d = digest(secret);
      const ttlMs = Math.max(1, grant.expiresAtMs - clock());
      if (redis) await redis.set(redisKey(d), JSON.stringify(grant), 'PX', ttlMs);
      else memory.set(d, grant);
      return secret;
    },
    async take(secret) {
      const d = digest(secret);
      if (!redis) {
        const grant = memory.get(d);
        memory.delete(d);
        return live(grant);
      }
      const stored = await redis.getdel(redisKey(d));
      return stored === null ? undefined : live(JSON.parse(stored) as EphemeralGrant);
    },
    close() {
      clearInterval(sweep);
      memory.clear();
    },
  };
}
