/**
 * The CLI's policy flags, turned into an admin API body. The API validates; this only shapes. An
 * update sends only the fields named (the API merges them into the key's policy).
 */

export const POLICY_OPTIONS = {
  tier: { type: 'string' },
  rpm: { type: 'string' },
  rpd: { type: 'string' },
  tpm: { type: 'string' },
  'batch-queue-tokens': { type: 'string' },
  models: { type: 'string' },
  'budget-daily': { type: 'string' },
  'budget-monthly': { type: 'string' },
  'budget-total': { type: 'string' },
  'tokens-daily': { type: 'string' },
  'tokens-monthly': { type: 'string' },
  'expires-at': { type: 'string' },
  'max-wait-ms': { type: 'string' },
  'share-weight': { type: 'string' },
  'share-group': { type: 'string' },
  priority: { type: 'string' },
  disabled: { type: 'boolean' },
  enabled: { type: 'boolean' },
  team: { type: 'string' },
  owner: { type: 'string' },
  description: { type: 'string' },
  policy: { type: 'string' },
  clear: { type: 'string', multiple: true },
} as const;

type Flags = { readonly [K in keyof typeof POLICY_OPTIONS]?: (typeof POLICY_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof POLICY_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** A number as typed; `none` / `null` for "no limit". Anything else goes to the API as is, to be refused there. */
function numberOrNone(text: string): number | null | string {
  if (text === 'none' || text === 'null') return null;
  const value = Number(text);
  return text.trim() !== '' && Number.isFinite(value) ? value : text;
}

function setIn(target: Record<string, unknown>, section: string, field: string, value: unknown): void {
  const inner = (target[section] ??= {}) as Record<string, unknown>;
  inner[field] = value;
}

export function policyFromFlags(flags: Flags, patch: boolean): Record<string, unknown> {
  let body: Record<string, unknown> = {};
  if (flags.policy !== undefined) {
    const parsed: unknown = JSON.parse(flags.policy);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('--policy must be a JSON object');
    body = parsed as Record<string, unknown>;
  }
  if (flags.tier !== undefined) body.tier = flags.tier;
  const limits: [keyof Flags, string][] = [['rpm', 'rpm'], ['rpd', 'rpd'], ['tpm', 'tpm'], ['batch-queue-tokens', 'batch_queue_tokens']];
  for (const [flag, field] of limits) {
    const text = flags[flag] as string | undefined;
    if (text === undefined) continue;
    // `default`: the tier's figure, i.e. no override (an update removes the key's own).
    if (text === 'default') {
      if (patch) setIn(body, 'limits', field, 'default');
    } else {
      setIn(body, 'limits', field, numberOrNone(text));
    }
  }
  if (flags.models !== undefined) body.models = flags.models.split(',').map((m) => m.trim()).filter(Boolean);
  for (const window of ['daily', 'monthly', 'total'] as const) {
    const flag = flags[`budget-${window}`];
    if (flag !== undefined) setIn(body, 'budget_usd', window, numberOrNone(flag));
  }
  for (const window of ['daily', 'monthly'] as const) {
    const flag = flags[`tokens-${window}`];
    if (flag !== undefined) setIn(body, 'token_quota', window, numberOrNone(flag));
  }
  if (flags['expires-at'] !== undefined) body.expires_at = flags['expires-at'];
  if (flags['max-wait-ms'] !== undefined) body.max_wait_ms = numberOrNone(flags['max-wait-ms']);
  if (flags['share-weight'] !== undefined) setIn(body, 'fair_share', 'weight', numberOrNone(flags['share-weight']));
  if (flags['share-group'] !== undefined) setIn(body, 'fair_share', 'group', flags['share-group'] === 'none' && patch ? null : flags['share-group']);
  if (flags.priority !== undefined) setIn(body, 'fair_share', 'priority', numberOrNone(flags.priority));
  if (flags.disabled) body.disabled = true;
  if (flags.enabled) body.disabled = false;
  for (const field of ['team', 'owner', 'description'] as const) if (flags[field] !== undefined) setIn(body, 'metadata', field, flags[field]);
  if (patch) for (const field of flags.clear ?? []) body[field] = null;
  return body;
}
