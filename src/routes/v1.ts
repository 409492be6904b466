import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import type { KeyStore } from '../keys/registry.js';
import {
  AdminOnlyEndpointError,
  EndpointNotServedError,
  InvalidJsonError,
  InvalidUrlError,
  UnsupportedContentTypeError,
} from '../errors/errors.js';
import { isCanonicalPath, pathOf } from '../proxy/canonical-path.js';
import { isJsonContentType } from '../proxy/request-body.js';
import { createForwarder, JsonBody, type ForwardDeps } from '../proxy/forward.js';
import { ENDPOINTS } from '../proxy/endpoints.js';
import { JsonTooDeepError } from '../errors/request-errors.js';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../usage/json-depth.js';
import type { AuthFailureGuard } from './auth-guard.js';
import { chain, detach } from '../util/maybe.js';

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
  /** Routes of other modules behind the same authentication (realtime's client secrets). */
  readonly extraRoutes?: readonly ((app: FastifyInstance) => Promise<void>)[];
}

export async function v1Routes(app: FastifyInstance, deps: V1Deps): Promise<void> {
  const { config, keys } = deps;

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.server.body_limit_bytes }, (req, raw, done) => {
    const bytes = raw as Buffer;
    // Fastify matches the media type loosely; JSON is taken only as application/json in UTF-8.
    if (!isJsonContentType(req.headers['content-type'])) return done(new UnsupportedContentTypeError(req.headers['content-type'], ['application/json']), undefined);
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      return done(new InvalidJsonError(), undefined);
    }
    // Every walker after this point may recurse: an over-deep body is refused here, once.
    if (exceedsJsonDepth(value)) return done(new JsonTooDeepError(MAX_JSON_DEPTH), undefined);
    done(null, new JsonBody(bytes, value));
  });
  // Everything else (multipart uploads, audio, …) stays an unread stream, piped upstream as it arrives.
  app.removeContentTypeParser(['text/plain']);
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // Failed authentications are counted per client address (routes/auth-guard.ts); valid keys
  // never reach the counter, so they pay nothing for it.
  const refuse = deps.authGuard.refuse;
  app.addHook('onRequest', (request, _reply, done) => {
    // Only the canonical form of a catalogue path is served (no dot segments, encoded characters, …).
    // (/tollgate/me is tollgate's own and never forwarded.)
    if (!isCanonicalPath(request.url) && !request.url.startsWith('/tollgate/')) return done(new InvalidUrlError(request.method, pathOf(request.url)));
    // A cached key answers at once; one this instance has not cached (or not lately) is asked
    // from the key store. Either way, a refusal (thrown or rejected) takes the guard's one path.
    detach(
      () =>
        chain(keys.authenticate(request.headers.authorization, request.raw), (caller) => {
          request.tollgate.caller = caller;
          done();
        }),
      (err: unknown) => refuse(request, err, done),
    );
  });

  app.get('/tollgate/me', deps.selfService);

  for (const routes of deps.extraRoutes ?? []) await app.register(routes);

  const forward = createForwarder(deps);
  for (const endpoint of ENDPOINTS) {
    if (endpoint.access !== 'served') continue;
    app.route({ method: endpoint.method, url: endpoint.url, handler: (request, reply) => forward(endpoint, request, reply) });
  }
}

/**
 * The organisation's admin API: refused with 403 before authentication (an admin key is not a
 * tollgate key, and the gateway's credential is a project key); never forwarded.
 */
export async function adminOnlyRoutes(app: FastifyInstance): Promise<void> {
  for (const endpoint of ENDPOINTS) {
    if (endpoint.access !== 'admin_only' && endpoint.access !== 'not_served') continue;
    const refusal = endpoint.access === 'admin_only' ? AdminOnlyEndpointError : EndpointNotServedError;
    // Refused before the body is read: a WebRTC offer (application/sdp) gets this answer, not a 415.
    app.route({
      method: endpoint.method,
      url: endpoint.url,
      onRequest: (request, _reply, done) => done(new refusal(request.method, pathOf(request.url))),
      handler: (request) => {
        throw new refusal(request.method, pathOf(request.url));
      },
    });
  }
}
