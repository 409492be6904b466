import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import type { KeyStore } from '../keys/registry.js';
import { InvalidJsonError, type TollgateError } from '../errors/errors.js';
import { createForwarder, JsonBody, type ForwardDeps } from '../proxy/forward.js';
import { ENDPOINTS } from '../proxy/endpoints.js';
import type { AuthFailureGuard } from './auth-guard.js';

/**
 * The `/v1` routes: body parsing (JSON parsed once and kept as bytes; uploads left as streams),
 * authentication with its guard against failed-auth floods, and one route per endpoint of the
 * catalogue, all served by the forwarder.
 */
export interface V1Deps extends ForwardDeps {
  readonly keys: KeyStore;
  /** GET /tollgate/me: a key reads its own limits, usage and remaining budget. */
  readonly selfService: RouteHandlerMethod;
  readonly authGuard: AuthFailureGuard;
}

export async function v1Routes(app: FastifyInstance, deps: V1Deps): Promise<void> {
  const { config, keys } = deps;

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.server.body_limit_bytes }, (_req, raw, done) => {
    const bytes = raw as Buffer;
    try {
      done(null, new JsonBody(bytes, JSON.parse(bytes.toString('utf8'))));
    } catch {
      done(new InvalidJsonError(), undefined);
    }
  });
  // Everything else (multipart uploads, audio, …) stays an unread stream, piped upstream as it arrives.
  app.removeContentTypeParser(['text/plain']);
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // Failed authentications are counted per client address (routes/auth-guard.ts); valid keys
  // never reach the counter, so they pay nothing for it.
  const refuse = deps.authGuard.refuse;
  app.addHook('onRequest', (request, _reply, done) => {
    try {
      const caller = keys.authenticate(request.headers.authorization, request.raw);
      if (!(caller instanceof Promise)) {
        request.tollgate.caller = caller;
        return done();
      }
      // A run-time key this instance has not cached (or not lately): asked from the key store.
      caller.then(
        (found) => {
          request.tollgate.caller = found;
          done();
        },
        (err: unknown) => refuse(request, err as TollgateError, done),
      );
    } catch (err) {
      refuse(request, err as TollgateError, done);
    }
  });

  app.get('/tollgate/me', deps.selfService);

  const forward = createForwarder(deps);
  for (const endpoint of ENDPOINTS) {
    app.route({
      method: [...endpoint.methods],
      url: endpoint.url,
      handler: (request, reply) => forward(endpoint, request, reply),
    });
  }
}
