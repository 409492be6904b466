import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '../plugins/redis.js';

/** Who a console session belongs to: the admin, or one key (which sees only itself). */
export type Principal = { readonly role: 'admin' } | { readonly role: 'key'; readonly keyId: string; readonly keyHint: string | null };

/** A signed-in session: who, and the token its mutating calls must carry (synchronizer-token CSRF defence). */
export interface Session {
  readonly principal: Principal;
  readonly csrf: string;
}

export interface SessionStore {
  /** A new session; returns the random id the cookie carries (never stored as such). */
  create(principal: Principal): Promise<{ id: string; session: Session }>;
  get(id: string): Promise<Session | undefined>;
  destroy(id: string): Promise<void>;
  close(): void;
}

export interface SessionOptions {
  readonly redis: RedisClient | undefined;
  readonly keyPrefix: string;
  readonly ttlMs: number;
  readonly clock?: () => number;
}

/** Session ids are bearer secrets: only their digest is a storage key. */
const digest = (id: string): string => createHash('sha256').update(id).digest('hex');

function isPrincipal(value: unknown): value is Principal {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.role === 'admin' || (v.role === 'key' && typeof v.keyId === 'string' && (v.keyHint === null || typeof v.keyHint === 'string'));
}

function parse(text: string | null): Session | undefined {
  if (text === null) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const { principal, csrf } = value as Record<string, unknown>;
    return isPrincipal(principal) && typeof csrf === 'string' ? { principal, csrf } : undefined;
  } catch {
    return undefined;
  }
}

/** Sessions in Redis (shared by every instance, expiring there) or, without Redis, in process memory. */
export function createSessionStore(options: SessionOptions): SessionStore {
  const newId = (): string => randomBytes(32).toString('base64url');
  const newSession = (principal: Principal): Session => ({ principal, csrf: randomBytes(32).toString('base64url') });
  const { redis, ttlMs } = options;
  if (redis) {
    const keyOf = (id: string): string => `${options.keyPrefix}console:session:${digest(id)}`;
    return {
      async create(principal) {
        const id = newId();
        const session = newSession(principal);
        await redis.set(keyOf(id), JSON.stringify(session), 'PX', ttlMs);
        return { id, session };
      },
      get: async (id) => parse(await redis.get(keyOf(id))),
      destroy: async (id) => void (await redis.del(keyOf(id))),
      close: () => undefined,
    };
  }
  return memorySessions(ttlMs, options.clock ?? Date.now, newId, newSession);
}

function memorySessions(ttlMs: number, clock: () => number, newId: () => string, newSession: (principal: Principal) => Session): SessionStore {
  const sessions = new Map<string, { session: Session; expiresAt: number }>();
  // Expired sessions are dropped once a minute, so the map stays bounded by the sign-ins of one TTL.
  const sweep = setInterval(() => {
    const now = clock();
    for (const [key, session] of sessions) if (session.expiresAt <= now) sessions.delete(key);
  }, 60_000);
  sweep.unref();
  return {
    async create(principal) {
      const id = newId();
      const session = newSession(principal);
      sessions.set(digest(id), { session, expiresAt: clock() + ttlMs });
      return { id, session };
    },
    async get(id) {
      const found = sessions.get(digest(id));
      return found && found.expiresAt > clock() ? found.session : undefined;
    },
    async destroy(id) {
      sessions.delete(digest(id));
    },
    close: () => clearInterval(sweep),
  };
}
