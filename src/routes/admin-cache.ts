import type { FastifyInstance, onRequestAsyncHookHandler, onRequestHookHandler } from 'fastify';
import { KeyNotFoundError, ServiceUnavailableError } from '../errors/errors.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { adminAuth } from './admin.js';
import type { AuthFailureGuard } from './auth-guard.js';

/**
 * Admin routes of the response cache: `DELETE /admin/cache` purges every entry,
 * `DELETE /admin/cache/keys/{id}` one key's (its group's, when the key shares a group). The admin
 * API's token check (routes/admin.ts); registered only when the token is set (otherwise 404).
 */

export interface AdminCacheDeps {
  readonly token: string;
  readonly guard: AuthFailureGuard;
  /** The cache scope of a key (static or run-time); undefined: no such key. */
  readonly scopeOf: (id: string) => Promise<string | undefined>;
  /** The cache group a key names, if any (for the answer). */
  readonly groupOf: (id: string) => Promise<string | undefined>;
  readonly responseCache: ResponseCache;
  /** Who may call: the admin token by default; the console serves these routes to an admin's session. */
  readonly auth?: onRequestHookHandler | onRequestAsyncHookHandler;
}

export async function adminCacheRoutes(app: FastifyInstance, deps: AdminCacheDeps): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  app.addHook('onRequest', deps.auth ?? adminAuth(deps.token, deps.guard));
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
