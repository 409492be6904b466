import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { bearerToken, type Caller } from '../auth/keys.js';
import type { Catalogue, ModelInfo } from '../config/catalogue.js';
import {
  InternalServerError,
  InvalidApiKeyError,
  InvalidRequestError,
  InvalidUrlError,
  MissingApiKeyError,
  ModelNotFoundError,
  QuotaExceededError,
  RateLimitError,
  ServiceUnavailableError,
  TollgateError,
} from '../errors/errors.js';
import { checkModelAllowed } from '../keys/caller.js';
import type { KeyStore } from '../keys/registry.js';
import type { Limiter } from '../limits/limiter.js';
import type { Quotas } from '../quota/charge.js';
import type { UpstreamIdentity } from '../upstream/headers.js';
import { dialUpstream, UpstreamRefusedUpgrade } from './dial.js';
import { EPHEMERAL_PREFIX, type EphemeralGrant, type EphemeralSecrets } from './secrets.js';

/** The subprotocol browsers use to carry their key (they cannot set headers). */
const KEY_PROTOCOL = 'openai-insecure-api-key.';

export interface UpgradeDeps {
  readonly keys: KeyStore;
  readonly secrets: EphemeralSecrets;
  /** The Caller of a key id (for ephemeral secrets); undefined when it no longer exists. */
  readonly callerById: (id: string) => Promise<Caller | undefined>;
  readonly catalogue: Catalogue;
  readonly limiter: Limiter;
  readonly quotas: Quotas;
  readonly rejectUnknownModels: boolean;
  readonly upstreamBaseUrl: string;
  readonly identity: UpstreamIdentity;
  readonly connectTimeoutMs: number;
  readonly maxPayload: number;
  readonly isDraining: () => boolean;
  readonly newId: () => string;
  readonly onRefused: (keyId: string, model: string, limit: string) => void;
  readonly onError: (err: unknown) => void;
}

/** An admitted, connected session, ready to relay. */
export interface Accepted {
  readonly id: string;
  readonly client: WebSocket;
  readonly upstream: WebSocket;
  readonly caller: Caller;
  readonly model: ModelInfo | undefined;
  readonly modelLabel: string;
  readonly limitHeaders: Readonly<Record<string, string>>;
  readonly grant: EphemeralGrant | undefined;
}

/**
 * The credential an upgrade request carries: a Bearer header, or the browser subprotocol. Two that
 * differ (a header and a protocol, or two protocols) are refused: tollgate admits one key.
 */
function presentedSecret(req: IncomingMessage, protocols: readonly string[]): string | undefined {
  const found = new Set<string>();
  const bearer = bearerToken(req.headers.authorization);
  if (bearer !== undefined) found.add(bearer);
  for (const protocol of protocols) if (protocol.startsWith(KEY_PROTOCOL)) found.add(protocol.slice(KEY_PROTOCOL.length));
  if (found.size > 1) throw new InvalidRequestError('The request carries more than one API key (an Authorization header and a subprotocol, or two subprotocols).', null, 'invalid_api_key');
  return found.values().next().value;
}

/** RFC 7230 token: what a subprotocol may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * A well-formed WebSocket opening handshake (RFC 6455 §4.2.1), checked before anything is admitted
 * or dialled: what `ws` would refuse after the upstream was opened is refused here, and so is a
 * client that offers subprotocols without `realtime` (it would fail on the answer). Returns the
 * offered subprotocols.
 */
function handshakeProtocols(req: IncomingMessage): string[] {
  const bad = (what: string): InvalidRequestError => new InvalidRequestError(`Invalid WebSocket upgrade: ${what}.`, null, 'invalid_upgrade');
  if (req.method !== 'GET') throw bad('the method must be GET');
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') throw bad('`Upgrade: websocket` is required');
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !WS_KEY.test(key)) throw bad('missing or malformed Sec-WebSocket-Key');
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') throw bad('Sec-WebSocket-Version must be 13');
  const header = req.headers['sec-websocket-protocol'];
  if (header === undefined) return [];
  const protocols = header.split(',').map((p) => p.trim());
  if (protocols.some((p) => !TOKEN.test(p)) || new Set(protocols).size !== protocols.length) throw bad('malformed Sec-WebSocket-Protocol');
  if (!protocols.includes('realtime')) throw bad('the subprotocols offered must include `realtime`');
  return protocols;
}

/**
 * `GET /v1/realtime` with an upgrade: authenticate (key, browser subprotocol or tollgate's
 * ephemeral secret), check the model, take one request from the key's RPM / RPD, dial the
 * upstream, and only then accept the client's upgrade. Any refusal before that is the HTTP error
 * OpenAI would send, with the key's rate-limit headers where it has them.
 */
export function createUpgradeHandler(deps: UpgradeDeps, onAccepted: (session: Accepted) => void): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  // Answers `realtime` to a client that offers it; never echoes the key protocol.
  const wss = new WebSocketServer({ noServer: true, maxPayload: deps.maxPayload, perMessageDeflate: false, handleProtocols: (offered) => (offered.has('realtime') ? 'realtime' : false) });
  const replyHeaders = new WeakMap<IncomingMessage, Record<string, string>>();
  wss.on('headers', (headers, req) => {
    for (const [name, value] of Object.entries(replyHeaders.get(req) ?? {})) headers.push(`${name}: ${value}`);
  });

  const authenticate = async (req: IncomingMessage, protocols: readonly string[]): Promise<{ caller: Caller; grant: EphemeralGrant | undefined }> => {
    const secret = presentedSecret(req, protocols);
    if (secret === undefined) throw new MissingApiKeyError();
    if (!secret.startsWith(EPHEMERAL_PREFIX)) return { caller: await deps.keys.authenticate(`Bearer ${secret}`), grant: undefined };
    const grant = await deps.secrets.take(secret);
    const caller = grant && (await deps.callerById(grant.keyId));
    if (!grant || !caller) throw new InvalidApiKeyError(secret);
    return { caller, grant };
  };

  const prepare = async (req: IncomingMessage, socket: Duplex, id: string): Promise<Omit<Accepted, 'client'> | undefined> => {
    // The path exactly as OpenAI serves it: no trailing slash, dot segments, encodings or absolute form.
    const raw = req.url ?? '/';
    const query = raw.indexOf('?');
    const path = query === -1 ? raw : raw.slice(0, query);
    if (path !== '/v1/realtime') throw new InvalidUrlError(req.method ?? 'GET', path);
    const protocols = handshakeProtocols(req);
    if (deps.isDraining()) throw new ServiceUnavailableError('The gateway is shutting down. Please try again.');
    const { caller, grant } = await authenticate(req, protocols);
    const url = new URL(raw, 'http://gateway');
    if (url.searchParams.has('call_id')) throw new InvalidRequestError('Attaching to a WebRTC call (`call_id`) is not available through tollgate.', 'call_id', 'unsupported_parameter');
    if (url.searchParams.getAll('model').length > 1) throw new InvalidRequestError("Invalid value for 'model': give it once.", 'model', 'invalid_value');
    const requested = url.searchParams.get('model') ?? grant?.model;
    if (!requested) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model', 'missing_required_parameter');
    const model = deps.catalogue.resolve(requested);
    if (!model && deps.rejectUnknownModels) throw new ModelNotFoundError(requested);
    if (grant && deps.catalogue.resolve(grant.model)?.name !== (model?.name ?? requested)) {
      throw new InvalidRequestError(`This client secret was minted for \`${grant.model}\`, not \`${requested}\`.`, 'model', 'invalid_value');
    }
    if (caller.models) checkModelAllowed(caller, requested, model);
    const modelLabel = model?.name ?? 'other';
    const limitHeaders = await admitSession(deps, caller, model, modelLabel);
    replyHeaders.set(req, { 'x-request-id': id, ...limitHeaders });
    const search = new URLSearchParams(url.searchParams);
    search.set('model', model?.routeTo ?? requested);
    const abort = new AbortController();
    const gone = (): void => abort.abort();
    socket.once('close', gone);
    const upstream = await dialUpstream({ baseUrl: deps.upstreamBaseUrl, search: `?${search.toString()}`, clientHeaders: req.headers, identity: deps.identity, timeoutMs: deps.connectTimeoutMs, maxPayload: deps.maxPayload, signal: abort.signal }).finally(() => socket.off('close', gone));
    if (socket.destroyed) {
      upstream.close(1001, 'client gone');
      return undefined;
    }
    return { id, upstream, caller, model, modelLabel, limitHeaders, grant };
  };

  return (req, socket, head) => {
    const id = deps.newId();
    // Until the upgrade is accepted the socket is plain HTTP: its errors end it quietly.
    socket.on('error', () => socket.destroy());
    prepare(req, socket, id).then(
      (ready) => {
        if (!ready) return;
        wss.handleUpgrade(req, socket, head, (client) => onAccepted({ ...ready, client }));
      },
      (err: unknown) => {
        const error = err instanceof TollgateError ? err : new InternalServerError();
        if (!(err instanceof TollgateError)) deps.onError(err);
        writeHttpError(socket, error, id);
      },
    );
  };
}

/**
 * One request from the key's RPM / RPD (no tokens: each response.create reserves its own). A key
 * with budgets or token quotas is also checked against them (a budget already used up refuses the
 * session); that hold is released at once.
 */
async function admitSession(deps: UpgradeDeps, caller: Caller, model: ModelInfo | undefined, modelLabel: string): Promise<Readonly<Record<string, string>>> {
  try {
    const charge = caller.quota ? deps.quotas.chargeFor(caller, model, 0, 0) : undefined;
    const reservation = await deps.limiter.admit({ caller, model: modelLabel, tokens: 0, charge });
    if (charge) await reservation.settle(NOTHING);
    return reservation.headers;
  } catch (err) {
    if (err instanceof RateLimitError || err instanceof QuotaExceededError) deps.onRefused(caller.id, modelLabel, err.kind);
    throw err;
  }
}

const NOTHING = { inputTokens: 0, cachedTokens: 0, outputTokens: 0 } as const;

function writeHttpError(socket: Duplex, error: TollgateError, id: string): void {
  if (socket.destroyed) return;
  const upstream = error instanceof UpstreamRefusedUpgrade ? error : undefined;
  const body = upstream ? upstream.body : JSON.stringify(error.toBody());
  const headers: Record<string, string> = {
    'content-type': upstream?.contentType ?? 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'x-request-id': id,
    connection: 'close',
    ...error.headers,
  };
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n${head}\r\n${body}`);
}
