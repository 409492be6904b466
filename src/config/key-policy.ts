import { z } from 'zod';
import { TIER_NAMES } from './defaults.js';

/**
 * The policy of one client key: the same fields in a config file's `keys:` entry and in the admin
 * API's bodies, built from one definition so the two cannot drift apart. The config file reads
 * numbers from `${VAR}` strings; the admin API takes JSON as it is. Hence the scalars are injected.
 */
export interface PolicyScalars {
  /** A non-negative integer. */
  readonly count: z.ZodType<number>;
  /** A positive integer. */
  readonly positive: z.ZodType<number>;
  /** A limit: a positive integer, or null for "no limit of that kind". */
  readonly limit: z.ZodType<number | null>;
  /** US dollars, non-negative, or null for "no budget of that kind". */
  readonly usd: z.ZodType<number | null>;
  readonly bool: z.ZodType<boolean>;
}

export const METADATA_FIELDS = ['team', 'owner', 'description'] as const;

/**
 * JSON.parse and the YAML parser keep a `__proto__` key as an own property, but zod's records skip
 * it without a word (assigning it would replace the result's prototype): a per-model limit under
 * that name would vanish silently. It is refused by name instead.
 */
export function withoutProtoKey<T extends z.ZodType>(record: T) {
  return z.preprocess((value, ctx) => {
    if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
      ctx.addIssue({ code: 'custom', message: '`__proto__` cannot be a model name', path: ['__proto__'], input: value });
    }
    return value;
  }, record);
}

export function keyPolicyFields(s: PolicyScalars) {
  const rates = {
    rpm: s.limit.optional().describe('Requests per minute (null: no limit of that kind).'),
    rpd: s.limit.optional().describe('Requests per day (null: no limit of that kind).'),
    tpm: s.limit.optional().describe('Tokens per minute, input + output (null: no limit of that kind).'),
  };
  return {
    tier: z.enum(TIER_NAMES).describe("The key's usage tier: its RPM, RPD, TPM and batch queue come from the tier table."),
    limits: z
      .strictObject({
        ...rates,
        batch_queue_tokens: s.limit.optional().describe("Input tokens of the key's pending batches per model (null: no limit)."),
        models: withoutProtoKey(z.record(z.string().min(1), z.strictObject(rates)))
          .optional()
          .describe('Per model (a catalogue name or alias): overrides of rpm, rpd and tpm for that model.'),
      })
      .optional()
      .describe("Overrides of the tier's figures for this key (null: no limit of that kind)."),
    max_wait_ms: s.count.optional().describe('When a rate-limit bucket refills within this many ms, the request waits instead of failing with 429.'),
    models: z
      .array(z.string().min(1))
      .min(1, 'list at least one model, or leave the allow-list out')
      .optional()
      .describe('The models this key may use (catalogue names or aliases); absent: every model. Another model: 403.'),
    budget_usd: z
      .strictObject({
        daily: s.usd.optional().describe('US dollars per UTC day.'),
        monthly: s.usd.optional().describe('US dollars per UTC calendar month.'),
        total: s.usd.optional().describe('US dollars ever.'),
      })
      .optional()
      .describe('Spending caps (null: none); a request that would pass one is refused with 429 insufficient_quota.'),
    token_quota: z
      .strictObject({
        daily: s.limit.optional().describe('Tokens per UTC day.'),
        monthly: s.limit.optional().describe('Tokens per UTC calendar month.'),
      })
      .optional()
      .describe('Token caps (input, cached included, + output); a request that would pass one is refused with 429 insufficient_quota.'),
    expires_at: z.iso
      .datetime({ offset: true, message: 'must be an ISO 8601 date-time with a time zone, e.g. 2026-12-31T00:00:00Z' })
      .optional()
      .describe('From this instant on the key is refused (401).'),
    disabled: s.bool.optional().describe('A disabled key is refused (401) until it is enabled again.'),
    on_shutdown: z
      .enum(['reject', 'route_to_successor'])
      .optional()
      .describe("For retired catalogue models past their shutdown date: overrides the model's own `on_shutdown`."),
    cache: z
      .strictObject({
        ttl_s: s.positive.default(3600).describe('How long a stored answer lives, in seconds.'),
        max_entry_bytes: s.positive.default(1024 * 1024).describe('Largest answer stored.'),
        group: z
          .string()
          .min(1)
          .max(128)
          .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only')
          .optional()
          .describe('Keys naming the same group share their entries; without, each key has its own.'),
      })
      .optional()
      .describe('The exact-repeat response cache for this key; off when absent.'),
    fair_share: z
      .strictObject({
        weight: s.positive.default(1).describe("This key's (or its group's) weight: with `limits.fair_share` on, a contended ceiling is shared among the active keys and groups in proportion to their weights."),
        group: z
          .string()
          .min(1)
          .max(128)
          .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only')
          .optional()
          .describe("Keys naming the same group (e.g. a team) share one share, of the group's weight (give its keys the same weight); without, the key has its own."),
        priority: s.count.default(0).describe('Within its share, a waiting request (max_wait_ms) of a higher priority is admitted before those of lower ones.'),
      })
      .optional()
      .describe("The key's part of contended upstream ceilings, when `limits.fair_share` is on; absent: weight 1, its own share, priority 0."),
    metadata: z
      .strictObject({
        team: z.string().max(200).optional().describe('The owning team.'),
        owner: z.string().max(200).optional().describe('A contact.'),
        description: z.string().max(2000).optional().describe('Free text.'),
      })
      .optional()
      .describe('Shown by the admin API and the CLI; not used by enforcement.'),
  };
}

/** Key ids: what logs, metrics and the admin API show. */
export const keyId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only')
  .describe('The key id: what logs, metrics and the admin API show (letters, digits and . _ : -).');

/** The admin API's scalars: JSON numbers and booleans as they are. */
export const JSON_SCALARS: PolicyScalars = {
  count: z.number().int().nonnegative(),
  positive: z.number().int().positive(),
  limit: z.number().int().positive().nullable(),
  usd: z.number().nonnegative().max(1_000_000, 'at most 1,000,000 US dollars').nullable(),
  bool: z.boolean(),
};

/** A key's policy in JSON (the admin API's bodies). */
export const keyPolicySchema = z.strictObject(keyPolicyFields(JSON_SCALARS));
/** A key's policy as the code reads it (config entry and stored record alike). */
export type KeyPolicy = z.infer<typeof keyPolicySchema>;
export type KeyLimits = NonNullable<KeyPolicy['limits']>;

/**
 * PATCH of a key's policy: only the fields named change, nested ones included (a budget window, a
 * rate limit, one model's limits, a metadata field); `null` removes a field. Within `limits`, `null`
 * keeps its meaning "no limit of that kind", and `"default"` removes the override (back to the
 * tier's figure). `tier` cannot be removed; lists (`models`) are replaced whole.
 */
const TIER_DEFAULT = z.literal('default').describe('removes this override: the tier’s figure applies again');
const limitPatch = JSON_SCALARS.limit.or(TIER_DEFAULT).optional();
const ratesPatch = { rpm: limitPatch, rpd: limitPatch, tpm: limitPatch };
const policy = keyPolicyFields(JSON_SCALARS);
const text = (max: number) => z.string().max(max).nullable().optional();
export const keyPatchSchema = z.strictObject({
  tier: policy.tier.optional(),
  limits: z
    .strictObject({
      ...ratesPatch,
      batch_queue_tokens: limitPatch,
      models: withoutProtoKey(z.record(z.string().min(1), z.strictObject(ratesPatch).nullable().describe('null removes this model’s overrides'))).optional(),
    })
    .nullable()
    .optional(),
  max_wait_ms: policy.max_wait_ms.unwrap().nullable().optional(),
  models: policy.models.unwrap().nullable().optional().describe('replaced whole; null removes the allow-list (every model)'),
  budget_usd: z
    .strictObject({ daily: JSON_SCALARS.usd.optional(), monthly: JSON_SCALARS.usd.optional(), total: JSON_SCALARS.usd.optional() })
    .describe('null for a window removes that budget')
    .nullable()
    .optional(),
  token_quota: z
    .strictObject({ daily: JSON_SCALARS.limit.optional(), monthly: JSON_SCALARS.limit.optional() })
    .describe('null for a window removes that quota')
    .nullable()
    .optional(),
  expires_at: policy.expires_at.unwrap().nullable().optional(),
  disabled: policy.disabled.unwrap().nullable().optional(),
  fair_share: z
    .strictObject({
      weight: JSON_SCALARS.positive.optional(),
      group: policy.fair_share.unwrap().shape.group.unwrap().nullable().optional(),
      priority: JSON_SCALARS.count.optional(),
    })
    .describe('null for `group` removes it; null for the whole removes the fair-share settings')
    .nullable()
    .optional(),
  metadata: z.strictObject({ team: text(200), owner: text(200), description: text(2000) }).nullable().optional(),
});
export type KeyPatch = z.infer<typeof keyPatchSchema>;
