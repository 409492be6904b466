import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Catalogue } from '../config/catalogue.js';
import { InvalidRequestError, ModelNotFoundError } from '../errors/errors.js';
import { checkModelAllowed } from '../keys/caller.js';
import type { EphemeralSecrets } from './secrets.js';

export interface ClientSecretDeps {
  readonly secrets: EphemeralSecrets;
  readonly catalogue: Catalogue;
  readonly rejectUnknownModels: boolean;
  readonly defaultTtlS: number;
  readonly maxTtlS: number;
  readonly clock?: () => number;
}

const DEFAULT_MODEL = 'gpt-realtime';

function objectOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The parsed JSON body (v1's parser keeps it as `{ raw, value }`). */
function bodyOf(request: FastifyRequest): Record<string, unknown> {
  const body = objectOf(request.body);
  return objectOf(body?.value) ?? {};
}

/**
 * `POST /v1/realtime/client_secrets` (GA) and `POST /v1/realtime/sessions` (beta): tollgate mints
 * the ephemeral secret itself, bound to the calling key and the session settings, so the browser
 * that uses it stays under the key's limits. OpenAI's response shapes; the upstream is not called
 * (its own ephemeral keys would bypass tollgate).
 */
export function clientSecretRoutes(deps: ClientSecretDeps) {
  const clock = deps.clock ?? Date.now;
  const mint = async (request: FastifyRequest, session: Record<string, unknown>, seconds: unknown): Promise<{ value: string; expiresAt: number; session: Record<string, unknown> }> => {
    const caller = request.tollgate.caller;
    if (!caller) throw new InvalidRequestError('Missing caller.');
    const ttl = seconds === undefined ? deps.defaultTtlS : seconds;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 10 || ttl > deps.maxTtlS) {
      throw new InvalidRequestError(`Invalid 'expires_after.seconds': expected an integer from 10 to ${deps.maxTtlS}.`, 'expires_after.seconds', 'invalid_value');
    }
    const requested = session.model === undefined ? DEFAULT_MODEL : session.model;
    if (typeof requested !== 'string') throw new InvalidRequestError("Invalid type for 'session.model': expected a string.", 'session.model', 'invalid_type');
    const model = deps.catalogue.resolve(requested);
    if (!model && deps.rejectUnknownModels) throw new ModelNotFoundError(requested);
    if (caller.models) checkModelAllowed(caller, requested, model);
    const expiresAtMs = clock() + ttl * 1000;
    const { model: _model, ...settings } = session;
    const value = await deps.secrets.mint({ keyId: caller.id, model: requested, session: settings, expiresAtMs });
    const described = { type: 'realtime', object: 'realtime.session', id: `sess_tg${randomBytes(10).toString('hex')}`, ...settings, model: requested };
    return { value, expiresAt: Math.floor(expiresAtMs / 1000), session: described };
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.post('/v1/realtime/client_secrets', async (request: FastifyRequest, reply: FastifyReply) => {
      const body = bodyOf(request);
      const expires = objectOf(body.expires_after);
      if (body.expires_after !== undefined && (!expires || (expires.anchor !== undefined && expires.anchor !== 'created_at'))) {
        throw new InvalidRequestError("Invalid 'expires_after': expected {anchor: 'created_at', seconds}.", 'expires_after', 'invalid_value');
      }
      const minted = await mint(request, objectOf(body.session) ?? {}, expires?.seconds);
      reply.header('x-request-id', request.id);
      return { value: minted.value, expires_at: minted.expiresAt, session: minted.session };
    });
    app.post('/v1/realtime/sessions', async (request: FastifyRequest, reply: FastifyReply) => {
      const minted = await mint(request, bodyOf(request), undefined);
      reply.header('x-request-id', request.id);
      return { ...minted.session, client_secret: { value: minted.value, expires_at: minted.expiresAt } };
    });
  };
}
