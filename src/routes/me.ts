import type { Caller } from '../auth/keys.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Catalogue } from '../config/catalogue.js';
import type { Limiter } from '../limits/limiter.js';
import { reportModels, type UsageReader } from '../quota/report.js';

export interface SelfServiceDeps {
  readonly usage: UsageReader;
  readonly limiter: Limiter;
  readonly catalogue: Catalogue;
}

/**
 * `GET /tollgate/me` with a key's own bearer: its policy as it applies now (tier figures merged
 * with its overrides), usage, remaining budgets and quotas, and rate limits. Served in the /v1
 * scope, so it authenticates (and guards against failed-auth floods) like every client call.
 */
export function selfService(deps: SelfServiceDeps) {
  return async (request: FastifyRequest<{ Querystring: { model?: string | string[] } }>, reply: FastifyReply): Promise<unknown> => {
    const caller = request.tollgate.caller;
    if (!caller) throw new Error('/tollgate/me reached without a caller');
    request.tollgate.endpoint = '/tollgate/me';
    const model = request.query?.model;
    const requested = model === undefined ? [] : Array.isArray(model) ? model : [model];
    reply.header('x-request-id', request.id).header('cache-control', 'no-store');
    return selfReport(deps, caller, requested);
  };
}

/** What a key may read about itself: its policy as it applies now, usage, budgets and rate limits (also the console's self-service page). */
export async function selfReport(deps: SelfServiceDeps, caller: Caller, requested: readonly string[]): Promise<Record<string, unknown>> {
  const report = await deps.usage(caller, reportModels(caller, deps.catalogue, requested));
  return {
    object: 'tollgate.key.self',
    id: caller.id,
    tier: caller.tier,
    limits: deps.limiter.figures(caller),
    models: caller.models ? [...caller.models] : null,
    expires_at: caller.expiresAtMs === undefined ? null : new Date(caller.expiresAtMs).toISOString(),
    ...report,
  };
}
