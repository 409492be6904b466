import { hash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { bearerToken } from '../auth/keys.js';
import { ServiceUnavailableError, TollgateError } from '../errors/errors.js';
import type { ResponseCache } from '../cache/response-cache.js';

/**
 * Admin routes of the response cache, until the admin API (issue 5) lands and takes them in:
 * `DELETE /admin/cache` purges every entry, `DELETE /admin/cache/keys/{id}` one key's (its
 * group's, when the key shares a group). Bearer `TOLLGATE_ADMIN_TOKEN`, compared in constant
 * time; registered only when the token is set (otherwise `/admin/*` is 404).
 */

export class InvalidAdminTokenError extends TollgateError {
  readonly status = 401;
  readonly type = 'invalid_request_error';
  override readonly code = 'invalid_api_key';
  constructor() {
    super('The admin API needs `Authorization: Bearer <TOLLGATE_ADMIN_TOKEN>`.');
  }
}

export class KeyNotFoundError extends TollgateError {
  readonly status = 404;
  readonly type = 'invalid_request_error';
  override readonly code = 'key_not_found';
  override readonly param = 'id';
  constructor(id: string) {
    super(`No key with id '${id}'.`);
  }
}

export interface AdminCacheDeps {
  readonly token: string;
  /** The cache scope of a key (static or run-time); undefined: no such key. */
  readonly scopeOf: (id: string) => Promise<string | undefined>;
  /** The cache group a key names, if any (for the answer). */
  readonly groupOf: (id: string) => Promise<string | undefined>;
  readonly responseCache: ResponseCache;
}

const digest = (text: string): Buffer => hash('sha256', text, 'buffer');

export async function adminCacheRoutes(app: FastifyInstance, deps: AdminCacheDeps): Promise<void> {
  const expected = digest(deps.token);
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    const presented = bearerToken(request.headers.authorization);
    // Digests of equal length: the comparison takes the same time whatever was presented.
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) return done(new InvalidAdminTokenError());
    done();
  });
  const purge = async (scope?: string): Promise<number> => {
    try {
      return await deps.responseCache.purge(scope);
    } catch (err) {
      app.log.error({ err: err instanceof Error ? { message: err.message } : undefined }, 'response cache purge failed');
      throw new ServiceUnavailableError('The response cache store is unavailable; nothing was purged. Try again.');
    }
  };

  app.delete('/admin/cache', async (request) => {
    const purged = await purge();
    request.log.info({ purged }, 'response cache purged');
    return { object: 'cache.purge', purged };
  });

  app.delete<{ Params: { id: string } }>('/admin/cache/keys/:id', async (request) => {
    const { id } = request.params;
    const scope = await deps.scopeOf(id);
    if (scope === undefined) throw new KeyNotFoundError(id);
    const group = await deps.groupOf(id);
    const purged = await purge(scope);
    request.log.info({ key_id: id, group, purged }, 'response cache purged for a key');
    return { object: 'cache.purge', key_id: id, group: group ?? null, purged };
  });
}
