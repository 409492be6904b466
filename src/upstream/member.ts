import type { CeilingFigures } from '../limits/ceiling.js';
import type { LoadedUpstream } from './client.js';

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

/** The credential headers of this member, replacing whatever another member put there. */
export function stampCredential(member: PoolMember, headers: Record<string, string | string[]>): void {
  delete headers.authorization;
  delete headers['api-key'];
  delete headers['openai-organization'];
  delete headers['openai-project'];
  if (member.apiKey) {
    if (member.kind === 'azure') headers['api-key'] = member.apiKey;
    else headers.authorization = `Bearer ${member.apiKey}`;
  }
  if (member.organization) headers['openai-organization'] = member.organization;
  if (member.project) headers['openai-project'] = member.project;
}

/** The path on this member: Azure deployments take `/deployments/{name}` and an api-version. */
export function memberPath(member: PoolMember, path: string, model: string | undefined): string {
  const deployment = model === undefined ? undefined : member.deployments?.[model];
  if (deployment === undefined) return path;
  const separator = path.includes('?') ? '&' : '?';
  return `/deployments/${encodeURIComponent(deployment)}${path}${separator}api-version=${encodeURIComponent(member.apiVersion)}`;
}
