import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest, FastifySchema, onRequestAsyncHookHandler, onRequestHookHandler } from 'fastify';
import { bearerToken, sha256 } from '../auth/keys.js';
import type { KeyPolicy } from '../config/key-policy.js';
import { AdminUnauthorizedError, InvalidJsonError } from '../errors/errors.js';
import type { KeyAdmin, KeyPatch } from '../keys/admin.js';
import type { UsageReader } from '../quota/report.js';
import { jsonSchema, zodValidator, type SchemaName } from './admin-schemas.js';
import { openApiDocument, type DocumentedRoute } from './admin-openapi.js';
import type { AuthFailureGuard } from './auth-guard.js';

export interface AdminDeps {
  /** TOLLGATE_ADMIN_TOKEN; the admin API is not registered at all without it. */
  readonly token: string;
  /** Counts failed admin authentications per address, with the client keys' (routes/auth-guard.ts). */
  readonly guard: AuthFailureGuard;
  readonly admin: KeyAdmin;
  readonly usage: UsageReader;
  /** The models whose rate limits a usage report shows when the request names none. */
  readonly reportModels: (caller: Awaited<ReturnType<KeyAdmin['callerOf']>>, requested: readonly string[]) => string[];
  /** Who may call: the admin token by default; the console serves these routes to an admin's session. */
  readonly auth?: onRequestHookHandler | onRequestAsyncHookHandler;
}

interface RouteSchemas {
  readonly summary: string;
  readonly params?: SchemaName;
  readonly querystring?: SchemaName;
  readonly body?: SchemaName;
  readonly response: Readonly<Record<number, SchemaName>>;
}

/** Every route answers these besides its own (400 only for routes with input). */
const COMMON_ERRORS = { 401: 'error', 404: 'error', 429: 'error', 503: 'error' } as const;

function schemaOf(route: RouteSchemas): Record<string, unknown> {
  const response: Record<number, unknown> = {};
  for (const [status, name] of Object.entries({ ...COMMON_ERRORS, ...route.response })) response[Number(status)] = jsonSchema(name);
  if (route.params || route.body || route.querystring) response[400] = jsonSchema('error');
  return {
    summary: route.summary,
    ...(route.params && { params: jsonSchema(route.params) }),
    ...(route.querystring && { querystring: jsonSchema(route.querystring) }),
    ...(route.body && { body: jsonSchema(route.body) }),
    response,
  };
}

/**
 * The admin token check of every /admin route: `Authorization: Bearer $TOLLGATE_ADMIN_TOKEN`,
 * compared as SHA-256 digests (equal lengths: the same time whatever was presented). A missing or
 * wrong token counts against the address's failed authentications; an address over that limit is
 * refused whatever it presents, so guessing cannot go on at full speed.
 */
export function adminAuth(token: string, guard: AuthFailureGuard): onRequestHookHandler {
  const expected = sha256(token);
  return (request, _reply, done) => {
    const throttled = guard.throttled(request);
    if (throttled) return done(throttled);
    const presented = bearerToken(request.headers.authorization);
    if (presented === undefined) return guard.refuse(request, new AdminUnauthorizedError(true), done);
    if (!timingSafeEqual(sha256(presented), expected)) return guard.refuse(request, new AdminUnauthorizedError(false), done);
    done();
  };
}

/**
 * The admin API under /admin: keys (create, list, show, change, revoke, rotate) and their usage,
 * behind `Authorization: Bearer $TOLLGATE_ADMIN_TOKEN` (compared in constant time). Requests are
 * validated against the route schemas (zod, strict); /admin/openapi.json documents every route.
 */
export async function adminRoutes(app: FastifyInstance, deps: AdminDeps): Promise<void> {
  const { admin } = deps;

  app.setValidatorCompiler(({ schema }) => zodValidator(schema as Record<string, unknown>));
  // `POST /admin/keys/{id}/rotate` has no body; a client that still says application/json is fine.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    if ((text as string).trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text as string));
    } catch {
      done(new InvalidJsonError(), undefined);
    }
  });
  // Answers are built from typed values; the schemas document them (openapi.json).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook('onRequest', deps.auth ?? adminAuth(deps.token, deps.guard));
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.header('cache-control', 'no-store');
  });

  const documented: DocumentedRoute[] = [];
  const route = <P = unknown, B = unknown, Q = unknown>(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    schemas: RouteSchemas,
    handler: (request: FastifyRequest<{ Params: P; Body: B; Querystring: Q }>) => Promise<{ status?: number; body: unknown }>,
  ): void => {
    const schema = schemaOf(schemas);
    documented.push({ method, url: `/admin${url}`, schema });
    app.route<{ Params: P; Body: B; Querystring: Q }>({
      method,
      url,
      schema: schema as FastifySchema,
      handler: async (request, reply) => {
        const { status, body } = await handler(request);
        return reply.code(status ?? 200).send(body);
      },
    });
  };
  type Id = { id: string };
  const audit = (request: FastifyRequest, action: string, id: string): void => {
    // Who did what to which key; never a secret.
    request.log.info({ admin_action: action, key_id: id }, 'admin');
  };

  route('GET', '/keys', { summary: 'List every key (config file and admin API)', response: { 200: 'keyList' } }, async () => ({
    body: { object: 'list', data: await admin.list() },
  }));
  route<unknown, KeyPolicy & Id>(
    'POST',
    '/keys',
    { summary: 'Create a key; the secret is in `key`, shown this once', body: 'createBody', response: { 201: 'keyWithSecret', 409: 'error' } },
    async (request) => {
      const { id, ...policy } = request.body;
      const { view, secret } = await admin.create(id, policy);
      audit(request, 'create', id);
      return { status: 201, body: { ...view, key: secret } };
    },
  );
  route<Id>('GET', '/keys/:id', { summary: 'Show a key', params: 'idParams', response: { 200: 'keyView' } }, async (request) => ({
    body: await admin.get(request.params.id),
  }));
  route<Id, KeyPatch>(
    'PATCH',
    '/keys/:id',
    {
      summary:
        'Change a key: only the fields given change, nested ones too (a budget window, a rate limit, one model’s limits, a metadata field); null removes a field, except in `limits`, where null means no limit and "default" removes the override (409 for config-file keys and revoked keys)',
      params: 'idParams',
      body: 'patchBody',
      response: { 200: 'keyView', 409: 'error' },
    },
    async (request) => {
      const view = await admin.update(request.params.id, request.body);
      audit(request, 'update', view.id);
      return { body: view };
    },
  );
  route<Id>(
    'DELETE',
    '/keys/:id',
    { summary: 'Revoke a key: refused everywhere within a second; its record and usage stay (409 for config-file keys)', params: 'idParams', response: { 200: 'keyView', 409: 'error' } },
    async (request) => {
      const view = await admin.revoke(request.params.id);
      audit(request, 'revoke', view.id);
      return { body: view };
    },
  );
  route<Id>(
    'POST',
    '/keys/:id/rotate',
    { summary: 'Replace a key’s secret: the old one is refused at once; the new one is in `key`, shown this once', params: 'idParams', response: { 200: 'keyWithSecret', 409: 'error' } },
    async (request) => {
      const { view, secret } = await admin.rotate(request.params.id);
      audit(request, 'rotate', view.id);
      return { body: { ...view, key: secret } };
    },
  );
  route<Id, unknown, { model?: string | string[] }>(
    'GET',
    '/keys/:id/usage',
    { summary: 'A key’s usage (today, this month, total), budgets, token quotas and rate limits now', params: 'idParams', querystring: 'usageQuery', response: { 200: 'usageReport' } },
    async (request) => {
      const caller = await admin.callerOf(request.params.id);
      const model = request.query.model;
      const requested = model === undefined ? [] : Array.isArray(model) ? model : [model];
      const report = await deps.usage(caller, deps.reportModels(caller, requested));
      return { body: { object: 'tollgate.key.usage', id: caller.id, ...report } };
    },
  );
  documented.push({ method: 'GET', url: '/admin/openapi.json', schema: { summary: 'This document (OpenAPI 3.1)', response: {} } });
  const document = openApiDocument(documented);
  app.get('/openapi.json', async () => document);
}
