import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Catalogue } from '../config/catalogue.js';
import type { KeyAdmin } from '../keys/admin.js';
import type { Limiter } from '../limits/limiter.js';
import type { HistoryReader } from '../quota/history.js';
import type { UsageReader } from '../quota/report.js';
import { adminCacheRoutes, type AdminCacheDeps } from '../routes/admin-cache.js';
import { adminRoutes, type AdminDeps } from '../routes/admin.js';
import { selfReport } from '../routes/me.js';
import { overview } from './overview.js';
import { requireSession, type SessionRouteDeps } from './session-routes.js';

export interface DataRouteDeps extends Pick<SessionRouteDeps, 'sessions' | 'admin'> {
  /** The admin API's dependencies; undefined without an admin token (then only self-service). */
  readonly adminApi: AdminDeps | undefined;
  readonly cacheApi: AdminCacheDeps | undefined;
  readonly admin: KeyAdmin;
  readonly usage: UsageReader;
  readonly limiter: Limiter;
  readonly catalogue: Catalogue;
  readonly history: HistoryReader;
  readonly historyDays: number;
}


/**
 * The console's data: the admin pages call the admin API's own routes, mounted again under
 * /console/api/admin behind an admin's session (so its validation errors reach the form as they
 * are); a key's session reads only its own report. History comes from the daily usage hashes.
 */
export async function dataRoutes(app: FastifyInstance, deps: DataRouteDeps): Promise<void> {
  const asAdmin = requireSession(deps, 'admin');
  const asKey = requireSession(deps, 'key');
  const days = (request: FastifyRequest<{ Querystring: { days?: string } }>): number => {
    const asked = Number(request.query.days ?? deps.historyDays);
    return Number.isInteger(asked) && asked >= 1 ? Math.min(asked, deps.historyDays) : deps.historyDays;
  };

  if (deps.adminApi) {
    // The admin API itself (same validation, errors and audit log), behind an admin's session.
    await app.register(adminRoutes, { ...deps.adminApi, prefix: '/api/admin', auth: asAdmin });
    if (deps.cacheApi) await app.register(adminCacheRoutes, { ...deps.cacheApi, prefix: '/api', auth: asAdmin });
    app.get('/api/overview', { onRequest: asAdmin }, async () => overview(deps));
    app.get<{ Params: { id: string }; Querystring: { days?: string } }>('/api/keys/:id/history', { onRequest: asAdmin }, async (request) => {
      const view = await deps.admin.get(request.params.id);
      return { object: 'list', id: view.id, data: await deps.history(view.id, days(request)) };
    });
  }

  app.get<{ Querystring: { model?: string | string[] } }>('/api/me', { onRequest: asKey }, async (request) => {
    const principal = request.consoleSession?.principal;
    if (principal?.role !== 'key') throw new Error('key session expected');
    const caller = await deps.admin.callerOf(principal.keyId);
    const view = await deps.admin.get(principal.keyId);
    const report = await selfReport(deps, caller, []);
    return { ...report, status: view.status, budget_policy: view.budget_usd ?? null, metadata: view.metadata ?? null, key_hint: view.key_hint };
  });
  app.get<{ Querystring: { days?: string } }>('/api/me/history', { onRequest: asKey }, async (request) => {
    const principal = request.consoleSession?.principal;
    if (principal?.role !== 'key') throw new Error('key session expected');
    return { object: 'list', id: principal.keyId, data: await deps.history(principal.keyId, days(request)) };
  });
}
