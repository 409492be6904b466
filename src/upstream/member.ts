import type { CeilingFigures } from '../limits/ceiling.js';
import type { LoadedUpstream, UpstreamRequest } from './client.js';

/**
 * One upstream of the pool: where it is, whose credential it carries, which models it serves,
 * its weight and its ceiling. Knows how to put its own credential and path shape on a request
 * (OpenAI: `Authorization: Bearer`; Azure: `api-key`, and per-model deployment paths).
 */

export interface MemberOptions {
  readonly id: string;
  readonly kind: 'openai' | 'azure';
  /** Never logged, never returned: only ever written into the upstream request's headers. */
  readonly apiKey: string | undefined;
  readonly organization: string | undefined;
  readonly project: string | undefined;
  /** Catalogue model names served; undefined: every model. */
  readonly models: ReadonlySet<string> | undefined;
  /** Azure deployment names by catalogue model name. */
  readonly deployments: Readonly<Record<string, string>> | undefined;
  readonly apiVersion: string;
  readonly weight: number;
  /** The organisation named in a ceiling's 429. */
  readonly owner: string;
  /** The ceiling for a model; undefined: none. */
  readonly ceiling: ((model: string) => CeilingFigures | undefined) | undefined;
}

export interface PoolMember extends MemberOptions {
  readonly upstream: LoadedUpstream;
}

export function serves(member: PoolMember, model: string | undefined): boolean {
  if (model === undefined || !member.models) return true;
  return member.models.has(model);
}

/**
 * The request's headers with this member's credential, replacing whatever another member put
 * there. The credential comes first: a server keeps only so many headers (Node about 1,000), and
 * a client's many must never push the gateway's own out.
 */
export function withCredential(member: PoolMember, headers: Readonly<Record<string, string | string[]>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (member.apiKey) {
    if (member.kind === 'azure') out['api-key'] = member.apiKey;
    else out.authorization = `Bearer ${member.apiKey}`;
  }
  if (member.organization) out['openai-organization'] = member.organization;
  if (member.project) out['openai-project'] = member.project;
  for (const name in headers) if (!CREDENTIAL_HEADERS.has(name)) out[name] = headers[name] as string | string[];
  return out;
}

const CREDENTIAL_HEADERS = new Set(['authorization', 'api-key', 'openai-organization', 'openai-project']);

/** The path on this member: Azure deployments take `/deployments/{name}` and an api-version. */
export function memberPath(member: PoolMember, path: string, model: string | undefined): string {
  const deployment = model === undefined ? undefined : member.deployments?.[model];
  if (deployment === undefined) return path;
  const separator = path.includes('?') ? '&' : '?';
  return `/deployments/${encodeURIComponent(deployment)}${path}${separator}api-version=${encodeURIComponent(member.apiVersion)}`;
}

/** `GET /models` on this member with its own credential: its probe, and where shutdown dates are read. */
export function modelsRequest(member: PoolMember, timeoutMs: number): UpstreamRequest {
  const headers = withCredential(member, { 'accept-encoding': 'identity' });
  return { method: 'GET', path: memberPath(member, '/models', undefined), headers, body: undefined, signal: AbortSignal.timeout(timeoutMs) };
}
