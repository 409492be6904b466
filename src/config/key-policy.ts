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

export function keyPolicyFields(s: PolicyScalars) {
  const rates = { rpm: s.limit.optional(), rpd: s.limit.optional(), tpm: s.limit.optional() };
  return {
    tier: z.enum(TIER_NAMES),
    /**
     * Overrides of the tier's figures for this key (`null`: no limit of that kind), and per model
     * (a catalogue name or alias) overrides of those.
     */
    limits: z
      .strictObject({
        ...rates,
        batch_queue_tokens: s.limit.optional(),
        models: z.record(z.string().min(1), z.strictObject(rates)).optional(),
      })
      .optional(),
    /** When a bucket refills within this many ms, the request waits instead of failing. */
    max_wait_ms: s.count.optional(),
    /** The models this key may use (catalogue names or aliases); absent: every model. */
    models: z.array(z.string().min(1)).min(1, 'list at least one model, or leave the allow-list out').optional(),
    /** Spending caps in US dollars per UTC day, per UTC calendar month and in total. */
    budget_usd: z.strictObject({ daily: s.usd.optional(), monthly: s.usd.optional(), total: s.usd.optional() }).optional(),
    /** Token caps (input + output, cached included) per UTC day and per UTC calendar month. */
    token_quota: z.strictObject({ daily: s.limit.optional(), monthly: s.limit.optional() }).optional(),
    /** From this instant on the key is refused (401). */
    expires_at: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with a time zone, e.g. 2026-12-31T00:00:00Z' }).optional(),
    /** For retired catalogue models past their shutdown date: overrides the model's own `on_shutdown`. */
    on_shutdown: z.enum(['reject', 'route_to_successor']).optional(),
    /** A disabled key is refused (401) until it is enabled again. */
    disabled: s.bool.optional(),
    /** The exact-repeat response cache for this key; off when absent. */
    cache: z
      .strictObject({
        ttl_s: s.positive.default(3600),
        max_entry_bytes: s.positive.default(1024 * 1024),
        /** Keys naming the same group share their entries; without, each key has its own. */
        group: z
          .string()
          .min(1)
          .max(128)
          .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only')
          .optional(),
      })
      .optional(),
    metadata: z
      .strictObject({
        team: z.string().max(200).optional(),
        owner: z.string().max(200).optional(),
        description: z.string().max(2000).optional(),
      })
      .optional(),
  };
}

/** Key ids: what logs, metrics and the admin API show. */
export const keyId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only');

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
