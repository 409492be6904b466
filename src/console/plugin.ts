import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Catalogue } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import { ServiceUnavailableError } from '../errors/errors.js';
import { createKeyAdmin } from '../keys/admin.js';
import type { KeyBackend } from '../keys/backend.js';
import type { KeyStore } from '../keys/registry.js';
import type { Limiter } from '../limits/limiter.js';
import type { HistoryReader, HourlyReader } from '../quota/history.js';
import type { UsageReader } from '../quota/report.js';
import type { AdminCacheDeps } from '../routes/admin-cache.js';
import type { AdminDeps } from '../routes/admin.js';
import { dataRoutes } from './data-routes.js';
import { sessionRoutes } from './session-routes.js';
import { createSessionStore } from './sessions.js';

export interface ConsoleDeps {
  readonly config: Config;
  /** The admin API's dependencies; undefined without an admin token (then only self-service sign-in). */
  readonly adminApi: AdminDeps | undefined;
  readonly cacheApi: AdminCacheDeps | undefined;
  readonly keys: KeyStore;
  readonly backend: KeyBackend;
  readonly catalogue: Catalogue;
  readonly usage: UsageReader;
  readonly limiter: Limiter;
  readonly history: HistoryReader;
  readonly hourly: HourlyReader;
  /** The overview's live panels: this instance's metric registry and upstream pool. */
  readonly registry: Registry;
  readonly upstreamHealth: () => Record<string, string>;
  /** Where the built pages are (`npm run build` writes dist/console-ui). */
  readonly assetsDir?: string;
}

/** Two levels up from src/console or dist/console: the package root. */
export const DEFAULT_ASSETS_DIR = fileURLToPath(new URL('../../dist/console-ui/', import.meta.url));

/** Scripts, styles and data from this origin only; no inline code, no framing. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Whether /console/ exists: with an admin token, or with self-service sign-in on. */
export function consoleEnabled(config: Config, adminToken: string | undefined): boolean {
  return adminToken !== undefined || config.console.self_service;
}

/**
 * The console at /console/: the built single-page app and its API (sessions and data). Its own
 * encapsulated scope: nothing here runs for /v1 or /admin requests.
 */
export async function consolePlugin(app: FastifyInstance, deps: ConsoleDeps): Promise<void> {
  const { config } = deps;
  const assetsDir = deps.assetsDir ?? DEFAULT_ASSETS_DIR;
  const sessions = createSessionStore({ redis: app.redis, keyPrefix: config.limits.key_prefix, ttlMs: config.console.session_ttl_s * 1000 });
  app.addHook('onClose', async () => sessions.close());
  // The admin API's own admin (the same key store and catalogue), for reading keys without a token.
  const admin = createKeyAdmin({ keys: deps.keys, backend: deps.backend, catalogue: deps.catalogue, unknownModels: config.models.unknown });

  await app.register(fastifyCookie);
  app.decorateRequest('consoleSession', undefined);
  app.addHook('onSend', async (request, reply) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('x-request-id', request.id);
    if (request.url.startsWith('/console/api/')) reply.header('cache-control', 'no-store');
  });

  await app.register(sessionRoutes, {
    sessions,
    adminToken: deps.adminApi?.token,
    selfService: config.console.self_service,
    keys: deps.keys,
    admin,
    ttlMs: config.console.session_ttl_s * 1000,
    throttle: await signInThrottle(app, config),
  });
  await app.register(dataRoutes, {
    sessions,
    admin,
    adminApi: deps.adminApi,
    cacheApi: deps.cacheApi,
    usage: deps.usage,
    limiter: deps.limiter,
    catalogue: deps.catalogue,
    history: deps.history,
    historyDays: config.console.history_days,
    hourly: deps.hourly,
    hourlyRetentionDays: config.usage.hourly_retention_days,
    panels: { registry: deps.registry, catalogue: deps.catalogue, upstreamHealth: deps.upstreamHealth, metricsEnabled: config.metrics.enabled, perKeyLabels: config.metrics.per_key_labels, startedAt: Date.now() },
  });

  app.get('/', { prefixTrailingSlash: 'no-slash' }, async (_request, reply) => reply.redirect('/console/'));
  if (!existsSync(`${assetsDir}/index.html`)) {
    app.log.warn({ assets: assetsDir }, 'console: the pages are not built (npm run build); /console/ answers 503');
    app.get('/*', async () => {
      throw new ServiceUnavailableError('The console pages are not built: run `npm run build`.');
    });
    return;
  }
  await app.register(fastifyStatic, { root: assetsDir, prefix: '/', index: 'index.html', wildcard: true, cacheControl: false });
}

/**
 * Sign-ins are counted per client address with the same counter and limit as failed /v1
 * authentications (server.unauthenticated_rpm, on the shared Redis when there is one).
 */
async function signInThrottle(app: FastifyInstance, config: Config): Promise<((request: FastifyRequest) => Promise<{ exceeded: boolean; ttlMs: number }>) | undefined> {
  if (config.server.unauthenticated_rpm === 0) return undefined;
  await app.register(rateLimit, { global: false, redis: app.redis, nameSpace: `${config.limits.key_prefix}unauthenticated:`, skipOnError: true });
  const count = app.createRateLimit({ max: config.server.unauthenticated_rpm, timeWindow: 60_000 });
  return async (request) => {
    const counted = await count(request);
    return counted.isAllowed ? { exceeded: false, ttlMs: 0 } : { exceeded: counted.isExceeded, ttlMs: counted.ttl };
  };
}
