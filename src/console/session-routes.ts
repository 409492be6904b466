import { timingSafeEqual } from 'node:crypto';
import type {} from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { sha256 } from '../auth/keys.js';
import {
  AdminUnauthorizedError,
  ConsoleCsrfError,
  ConsoleForbiddenError,
  ConsoleSessionRequiredError,
  InvalidRequestError,
  UnauthenticatedFloodError,
} from '../errors/errors.js';
import type { KeyAdmin } from '../keys/admin.js';
import type { KeyStore } from '../keys/registry.js';
import type { Principal, Session, SessionStore } from './sessions.js';

export const SESSION_COOKIE = 'tollgate_console';
/** The cookie only travels to the console, never to /v1 or /admin. */
const COOKIE_PATH = '/console';

export interface SessionRouteDeps {
  readonly sessions: SessionStore;
  readonly adminToken: string | undefined;
  readonly selfService: boolean;
  readonly keys: KeyStore;
  readonly admin: KeyAdmin;
  readonly ttlMs: number;
  /** Counts one sign-in attempt of the request's address; resolves whether it is over the limit. */
  readonly throttle: ((request: FastifyRequest) => Promise<{ exceeded: boolean; ttlMs: number }>) | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession: Session | undefined;
  }
}

/** The session the cookie names, undefined without one (or once it ended). */
async function sessionOf(request: FastifyRequest, sessions: SessionStore): Promise<{ id: string; session: Session } | undefined> {
  const id = request.cookies[SESSION_COOKIE];
  if (!id) return undefined;
  const session = await sessions.get(id);
  return session && { id, session };
}

const constantTimeEqual = (a: string, b: string): boolean => timingSafeEqual(sha256(a), sha256(b));

/**
 * Mutating calls carry the session's token in `x-csrf-token` (the page reads it from
 * GET /console/api/session; it lives in page memory only). SameSite=Strict already keeps other
 * sites' requests from carrying the cookie; the token also covers a compromised sibling subdomain.
 */
function checkCsrf(request: FastifyRequest, session: Session): void {
  const presented = request.headers['x-csrf-token'];
  if (typeof presented !== 'string' || !constantTimeEqual(presented, session.csrf)) throw new ConsoleCsrfError();
}

/** The onRequest check of every console data route: a live session of the given role; CSRF on mutating methods. */
export function requireSession(deps: Pick<SessionRouteDeps, 'sessions' | 'admin'>, role: Principal['role']): onRequestAsyncHookHandler {
  return async (request, reply) => {
    const found = await sessionOf(request, deps.sessions);
    if (!found) throw new ConsoleSessionRequiredError();
    const { principal } = found.session;
    if (principal.role === 'key' && !(await keyStillValid(deps.admin, principal))) {
      // Rotated or revoked since sign-in: the session ends with the secret it was opened with.
      await deps.sessions.destroy(found.id);
      clearCookie(reply);
      throw new ConsoleSessionRequiredError();
    }
    if (principal.role !== role) throw new ConsoleForbiddenError();
    if (request.method !== 'GET' && request.method !== 'HEAD') checkCsrf(request, found.session);
    request.consoleSession = found.session;
  };
}

async function keyStillValid(admin: KeyAdmin, principal: Extract<Principal, { role: 'key' }>): Promise<boolean> {
  try {
    const view = await admin.get(principal.keyId);
    return view.status !== 'revoked' && view.key_hint === principal.keyHint;
  } catch {
    return false;
  }
}

function clearCookie(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { path: COOKIE_PATH, httpOnly: true, sameSite: 'strict', secure: 'auto' });
}

interface SignInBody {
  readonly admin_token?: unknown;
  readonly key?: unknown;
}

/** A sign-in names exactly one credential, as a string. */
function credentialOf(body: unknown): { kind: 'admin_token' | 'key'; value: string } {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as SignInBody;
  const given = (['admin_token', 'key'] as const).filter((name) => fields[name] !== undefined);
  if (given.length !== 1) throw new InvalidRequestError("Give exactly one of 'admin_token' or 'key'.", 'key', 'invalid_value');
  const kind = given[0] as 'admin_token' | 'key';
  const value = fields[kind];
  if (typeof value !== 'string' || value.length === 0 || value.length > 1024) throw new InvalidRequestError(`Invalid '${kind}': expected a non-empty string.`, kind, 'invalid_value');
  return { kind, value };
}

/** Sign-in with a page of another origin is refused (the browser always sends Origin on a POST). */
function checkOrigin(request: FastifyRequest): void {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `${request.protocol}://${request.host}`) throw new ConsoleCsrfError();
}

/** GET/POST/DELETE /console/api/session: who is signed in (and the CSRF token), sign in, sign out. */
export async function sessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): Promise<void> {
  const adminDigest = deps.adminToken === undefined ? undefined : sha256(deps.adminToken);

  const principalOf = async (kind: 'admin_token' | 'key', value: string): Promise<Principal> => {
    if (kind === 'admin_token') {
      if (!adminDigest || !timingSafeEqual(sha256(value), adminDigest)) throw new AdminUnauthorizedError(false);
      return { role: 'admin' };
    }
    if (!deps.selfService) throw new InvalidRequestError('Self-service sign-in is off (console.self_service).', 'key', 'self_service_disabled');
    // The same check as a /v1 call: disabled, expired, revoked and unknown keys are refused.
    const caller = await deps.keys.authenticate(`Bearer ${value}`);
    const view = await deps.admin.get(caller.id);
    return { role: 'key', keyId: caller.id, keyHint: view.key_hint };
  };

  app.get('/api/session', async (request) => {
    const found = await sessionOf(request, deps.sessions);
    const principal = found?.session.principal;
    return {
      object: 'console.session',
      signed_in: principal !== undefined,
      role: principal?.role ?? null,
      key_id: principal?.role === 'key' ? principal.keyId : null,
      csrf_token: found?.session.csrf ?? null,
      sign_in_with: [...(adminDigest ? ['admin_token'] : []), ...(deps.selfService ? ['key'] : [])],
    };
  });

  app.post('/api/session', async (request, reply) => {
    checkOrigin(request);
    // Every attempt counts (a right guess must not be told apart from a throttled one).
    const counted = await deps.throttle?.(request);
    if (counted?.exceeded) throw new UnauthenticatedFloodError(counted.ttlMs);
    const { kind, value } = credentialOf(request.body);
    const principal = await principalOf(kind, value);
    const { id, session } = await deps.sessions.create(principal);
    reply.setCookie(SESSION_COOKIE, id, { path: COOKIE_PATH, httpOnly: true, sameSite: 'strict', secure: 'auto', maxAge: Math.floor(deps.ttlMs / 1000) });
    request.log.info({ console_sign_in: principal.role, key_id: principal.role === 'key' ? principal.keyId : undefined }, 'console');
    return { object: 'console.session', signed_in: true, role: principal.role, key_id: principal.role === 'key' ? principal.keyId : null, csrf_token: session.csrf };
  });

  app.delete('/api/session', async (request, reply) => {
    const found = await sessionOf(request, deps.sessions);
    if (found) {
      checkCsrf(request, found.session);
      await deps.sessions.destroy(found.id);
    }
    clearCookie(reply);
    return { object: 'console.session', signed_in: false };
  });
}

