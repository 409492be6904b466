import type { KeyPatch } from '../config/key-policy.js';

/**
 * A PATCH applied to a key's policy (config/key-policy.ts: keyPatchSchema): objects are merged
 * field by field at every depth, so `budget_usd: {monthly: 100}` leaves the daily budget alone.
 * `null` removes a field, except for rate limits, where it is a value ("no limit of that kind")
 * and `"default"` removes the override. A section left empty is removed. Lists are replaced whole.
 */

/** Fields where null is a value, not a removal. */
const RATE_FIELDS: ReadonlySet<string> = new Set(['rpm', 'rpd', 'tpm', 'batch_queue_tokens']);

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function removes(field: string, value: unknown): boolean {
  return RATE_FIELDS.has(field) ? value === 'default' : value === null;
}

function merge(current: unknown, patch: Json): Json | undefined {
  // Spread defines own properties (a `__proto__` key cannot reach the prototype), and the patch's
  // fields come from the validated schema.
  const next: Json = isObject(current) ? { ...current } : {};
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (removes(field, value)) {
      delete next[field];
    } else if (isObject(value)) {
      const merged = merge(next[field], value);
      if (merged) next[field] = merged;
      else delete next[field];
    } else {
      next[field] = value;
    }
  }
  return Object.keys(next).length > 0 ? next : undefined;
}

/** The policy fields after the patch (a plain object, to be validated as a policy again). */
export function patchPolicy(current: Json, patch: KeyPatch): Json {
  return merge(current, patch) ?? {};
}
