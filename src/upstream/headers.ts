import type { IncomingHttpHeaders } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones a proxy must own itself. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);

/** Client headers never forwarded: its credential and identity are replaced by the gateway's. */
const NOT_TO_UPSTREAM = new Set(['authorization', 'api-key', 'x-api-key', 'openai-organization', 'openai-project', 'cookie', 'content-length', 'expect']);

/** Upstream headers never returned: cookies belong to the upstream's domain; length is recomputed when a body changes. */
const NOT_TO_CLIENT = new Set(['set-cookie']);

function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  // The usual values name no other header: nothing to build.
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  return new Set(text.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean));
}

export interface UpstreamIdentity {
  readonly apiKey: string | undefined;
  readonly organization: string | undefined;
  readonly project: string | undefined;
}

/**
 * Headers for the upstream request: the gateway's credential and identity first, then the
 * client's, cleaned. First, because a server keeps only so many headers (Node about 1,000) and
 * drops the rest: a client with many headers must never push the gateway's own out.
 */
export function upstreamRequestHeaders(
  client: IncomingHttpHeaders,
  identity: UpstreamIdentity,
  extra: { contentLength?: number | undefined; identityEncoding: boolean },
): Record<string, string | string[]> {
  const named = connectionTokens(client.connection);
  const out: Record<string, string | string[]> = {};
  if (identity.apiKey) out.authorization = `Bearer ${identity.apiKey}`;
  if (identity.organization) out['openai-organization'] = identity.organization;
  if (identity.project) out['openai-project'] = identity.project;
  if (extra.contentLength !== undefined) out['content-length'] = String(extra.contentLength);
  // Usage is read from the bytes on their way through, so they must arrive uncompressed.
  if (extra.identityEncoding) out['accept-encoding'] = 'identity';
  for (const name in client) {
    const value = client[name];
    if (value === undefined || HOP_BY_HOP.has(name) || NOT_TO_UPSTREAM.has(name) || named?.has(name)) continue;
    if (name === 'accept-encoding' && extra.identityEncoding) continue;
    out[name] = value;
  }
  return out;
}

/** The upstream's response head as the client gets it, read in one pass over undici's raw list. */
export interface ClientHead {
  /** `[name, value, …]` for `writeHead`: the upstream's headers, cleaned, without content-length. */
  readonly headers: string[];
  /** The upstream's content-length, for answers relayed byte for byte. */
  readonly contentLength: string | undefined;
  readonly contentType: string | undefined;
  readonly hasRequestId: boolean;
  /** The provider's x-ratelimit-remaining-requests / -tokens (kept from the client; read by calibration). */
  readonly remainingRequests?: string | undefined;
  readonly remainingTokens?: string | undefined;
}

/** What a response header's name means for the client's head. */
const enum Kind {
  Keep,
  Drop,
  ContentLength,
  ContentType,
  RequestId,
  Connection,
  RemainingRequests,
  RemainingTokens,
}

interface NameEntry {
  /** The name's bytes as the upstream sent them (a copy in memory of its own, not a slice of Buffer's shared pool). */
  readonly bytes: Uint8Array;
  /** Lower-cased. */
  readonly name: string;
  readonly kind: Kind;
  /** Another name with the same key (nameKey). */
  next: NameEntry | undefined;
}

function kindOf(name: string): Kind {
  if (name === 'x-ratelimit-remaining-requests') return Kind.RemainingRequests;
  if (name === 'x-ratelimit-remaining-tokens') return Kind.RemainingTokens;
  if (name === 'connection') return Kind.Connection;
  if (HOP_BY_HOP.has(name) || NOT_TO_CLIENT.has(name) || name.startsWith('x-ratelimit-')) return Kind.Drop;
  if (name === 'content-length') return Kind.ContentLength;
  if (name === 'content-type') return Kind.ContentType;
  if (name === 'x-request-id') return Kind.RequestId;
  return Kind.Keep;
}

/**
 * The response header names met so far, by a key from their bytes: an upstream sends the same
 * twenty or so names on every answer, and reading each from its bytes (decode, lower-case, look up
 * what it means) cost more than the rest of the head. Bounded: past MAX_NAMES, new names are read
 * from their bytes each time.
 */
const names = new Map<number, NameEntry>();
const MAX_NAMES = 512;
const MAX_CHAIN = 8;
let nameCount = 0;

function sameBytes(a: Uint8Array, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The cache's key for a name: its length and four of its bytes (first, middle, last two), which
 * tell the usual names apart; the bytes are compared in full below, so names that share a key
 * only share a chain. Cheaper than hashing every byte, which cost as much as the comparison.
 */
export function nameKey(raw: Buffer): number {
  const n = raw.length;
  if (n < 2) return n === 0 ? 0 : (raw[0] as number) << 8;
  let hash = Math.imul(0x811c9dc5 ^ n, 0x01000193);
  hash = Math.imul(hash ^ (raw[0] as number), 0x01000193);
  hash = Math.imul(hash ^ (raw[n >> 1] as number), 0x01000193);
  hash = Math.imul(hash ^ (raw[n - 2] as number), 0x01000193);
  hash = Math.imul(hash ^ (raw[n - 1] as number), 0x01000193);
  // Kept within a small integer (a Map key without a heap number).
  return hash & 0x3fffffff;
}

function headerName(raw: Buffer): NameEntry {
  const hash = nameKey(raw);
  const first = names.get(hash);
  let chain = 0;
  for (let entry = first; entry !== undefined; entry = entry.next, chain++) if (sameBytes(entry.bytes, raw)) return entry;
  const name = raw.toString('latin1').toLowerCase();
  const entry: NameEntry = { bytes: new Uint8Array(raw), name, kind: kindOf(name), next: first };
  // Names made to share a key do not grow a chain every answer walks: past MAX_CHAIN, read each time.
  if (nameCount < MAX_NAMES && chain < MAX_CHAIN) {
    nameCount++;
    names.set(hash, entry);
  }
  return entry;
}

/**
 * Headers for the client: the upstream's, cleaned (tollgate sets the key's x-ratelimit-* itself;
 * the upstream's describe the gateway's own organisation). Values of dropped headers are never
 * decoded: this runs on every answer.
 */
export function clientHead(raw: readonly Buffer[]): ClientHead {
  const headers: string[] = [];
  let contentLength: string | undefined;
  let contentType: string | undefined;
  let hasRequestId = false;
  let connection: string | undefined;
  let remainingRequests: string | undefined;
  let remainingTokens: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const { name, kind } = headerName(raw[i] as Buffer);
    if (kind === Kind.Drop) continue;
    const value = (raw[i + 1] as Buffer).toString('latin1');
    switch (kind) {
      case Kind.RemainingRequests:
        remainingRequests = value;
        continue;
      case Kind.RemainingTokens:
        remainingTokens = value;
        continue;
      case Kind.Connection:
        connection = connection === undefined ? value : `${connection},${value}`;
        continue;
      case Kind.ContentLength:
        contentLength = value;
        continue;
      case Kind.ContentType:
        contentType ??= value;
        break;
      case Kind.RequestId:
        hasRequestId = true;
        break;
    }
    headers.push(name, value);
  }
  const named = connectionTokens(connection);
  if (named) {
    // Rare: the upstream's Connection header names further hop-by-hop headers.
    const kept: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (!named.has(headers[i] as string)) kept.push(headers[i] as string, headers[i + 1] as string);
    if (named.has('content-length')) contentLength = undefined;
    if (named.has('content-type')) contentType = undefined;
    if (named.has('x-request-id')) hasRequestId = kept.includes('x-request-id');
    return { headers: kept, contentLength, contentType, hasRequestId, remainingRequests, remainingTokens };
  }
  return { headers, contentLength, contentType, hasRequestId, remainingRequests, remainingTokens };
}
