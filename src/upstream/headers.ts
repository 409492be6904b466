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

/** Headers for the upstream request: the client's, cleaned, with the gateway's credential. */
export function upstreamRequestHeaders(
  client: IncomingHttpHeaders,
  identity: UpstreamIdentity,
  extra: { contentLength?: number | undefined; identityEncoding: boolean },
): Record<string, string | string[]> {
  const named = connectionTokens(client.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in client) {
    const value = client[name];
    if (value === undefined || HOP_BY_HOP.has(name) || NOT_TO_UPSTREAM.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
  if (identity.apiKey) out.authorization = `Bearer ${identity.apiKey}`;
  if (identity.organization) out['openai-organization'] = identity.organization;
  if (identity.project) out['openai-project'] = identity.project;
  if (extra.contentLength !== undefined) out['content-length'] = String(extra.contentLength);
  // Usage is read from the bytes on their way through, so they must arrive uncompressed.
  if (extra.identityEncoding) out['accept-encoding'] = 'identity';
  return out;
}

/** Headers for the client: the upstream's, cleaned (tollgate sets the key's x-ratelimit-* itself). */
export function clientResponseHeaders(upstream: Record<string, string | string[] | undefined>, keepContentLength: boolean): Record<string, string | string[]> {
  const named = connectionTokens(upstream.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || HOP_BY_HOP.has(name) || NOT_TO_CLIENT.has(name) || named?.has(name)) continue;
    if (name === 'content-length' && !keepContentLength) continue;
    // The upstream's rate-limit headers describe the gateway's own organisation, not the key.
    if (name.startsWith('x-ratelimit-')) continue;
    out[name] = value;
  }
  return out;
}
