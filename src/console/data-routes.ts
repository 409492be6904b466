import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Catalogue } from '../config/catalogue.js';
import type { KeyAdmin } from '../keys/admin.js';
import type { Limiter } from '../limits/limiter.js';
import type { HistoryReader, HourlyReader } from '../quota/history.js';
import type { UsageReader } from '../quota/report.js';
import { adminCacheRoutes, type AdminCacheDeps } from '../routes/admin-cache.js';
import { adminRoutes, type AdminDeps } from '../routes/admin.js';
import { selfReport } from '../routes/me.js';
import { overview } from './overview.js';
import { panels, retiringModelsOf, type PanelDeps } from './panels.js';
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
  readonly hourly: HourlyReader;
  /** usage.hourly_retention_days: the hourly charts reach this far back (0: no hourly buckets). */
  readonly hourlyRetentionDays: number;
  /** The overview's live panels (this instance's metrics and upstream pool). */
  readonly panels: PanelDeps;
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
  // The current hour and the retention's whole hours before it; 24 unless asked.
  const maxHours = deps.hourlyRetentionDays * 24;
  const hours = (request: FastifyRequest<{ Querystring: { hours?: string } }>): number => {
    const asked = Number(request.query.hours ?? 24);
    return Math.min(Number.isInteger(asked) && asked >= 1 ? asked : 24, maxHours);
  };
  const hourly = async (id: string, count: number) => ({
    object: 'list',
    id,
    hours_kept: maxHours,
    data: count > 0 ? await deps.hourly(id, count) : [],
  });

  if (deps.adminApi) {
    // The admin API itself (same validation, errors and audit log), behind an admin's session.
    await app.register(adminRoutes, { ...deps.adminApi, prefix: '/api/admin', auth: asAdmin });
    if (deps.cacheApi) await app.register(adminCacheRoutes, { ...deps.cacheApi, prefix: '/api', auth: asAdmin });
    app.get('/api/overview', { onRequest: asAdmin }, async () => overview(deps));
    app.get<{ Params: { id: string }; Querystring: { days?: string } }>('/api/keys/:id/history', { onRequest: asAdmin }, async (request) => {
      const view = await deps.admin.get(request.params.id);
      return { object: 'list', id: view.id, data: await deps.history(view.id, days(request)) };
    });
    app.get<{ Params: { id: string }; Querystring: { hours?: string } }>('/api/keys/:id/hourly', { onRequest: asAdmin }, async (request) => {
      const view = await deps.admin.get(request.params.id);
      return hourly(view.id, hours(request));
    });
    app.get('/api/overview/panels', { onRequest: asAdmin }, async () => panels(deps.panels));
  }

  app.get<{ Querystring: { model?: string | string[] } }>('/api/me', { onRequest: asKey }, async (request) => {
    const principal = request.consoleSession?.principal;
    if (principal?.role !== 'key') throw new Error('key session expected');
    const caller = await deps.admin.callerOf(principal.keyId);
    const view = await deps.admin.get(principal.keyId);
    const report = await selfReport(deps, caller, []);
    return {
      ...report,
      status: view.status,
      budget_policy: view.budget_usd ?? null,
      metadata: view.metadata ?? null,
      key_hint: view.key_hint,
      retiring_models: await retiringModelsOf(deps.panels, principal.keyId),
    };
  });
  app.get<{ Querystring: { days?: string } }>('/api/me/history', { onRequest: asKey }, async (request) => {
    const principal = request.consoleSession?.principal;
    if (principal?.role !== 'key') throw new Error('key session expected');
    return { object: 'list', id: principal.keyId, data: await deps.history(principal.keyId, days(request)) };
  });
  app.get<{ Querystring: { hours?: string } }>('/api/me/hourly', { onRequest: asKey }, async (request) => {
    const principal = request.consoleSession?.principal;
    if (principal?.role !== 'key') throw new Error('key session expected');
    return hourly(principal.keyId, hours(request));
  });
}
