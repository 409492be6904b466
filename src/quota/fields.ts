import { keyTag } from '../limits/limiter.js';

/**
 * The fields of a key's usage hash, one hash per calendar window (UTC day, UTC month, total):
 * - settled usage: requests, tokens by type and their cost, as the upstream reported them;
 * - `spend_nano` and `quota_tokens`: what budgets and token quotas are checked against, i.e. the
 *   settled figures plus what requests still in flight have reserved (and reservations that were
 *   never settled, e.g. of a gateway killed mid-request).
 */
export const FIELDS = {
  requests: 'requests',
  input: 'input_tokens',
  cached: 'cached_tokens',
  output: 'output_tokens',
  cost: 'cost_nano',
  spend: 'spend_nano',
  tokens: 'quota_tokens',
} as const;

/** The storage key of a key's usage hash in one window (under the key's hash tag, with its buckets). */
export function usageKey(keyPrefix: string, keyId: string, windowId: string): string {
  return `${keyTag(keyPrefix, keyId)}|usage:${windowId}`;
}
