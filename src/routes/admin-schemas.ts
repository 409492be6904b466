import { z } from 'zod';
import { JSON_SCALARS, keyId, keyPolicyFields } from '../config/key-policy.js';
import { InvalidRequestError } from '../errors/errors.js';

/**
 * The admin API's schemas, written once in zod: requests are validated with them (strict: an
 * unknown field is an error, nothing is coerced), and the route schemas and /admin/openapi.json
 * are their JSON Schema (draft 2020-12) translations.
 */

const policy = keyPolicyFields(JSON_SCALARS);

/** PATCH: each field replaces the stored one; null removes it (tier cannot be removed). */
const patchFields = {
  tier: policy.tier.optional(),
  limits: policy.limits.unwrap().nullable().optional(),
  max_wait_ms: policy.max_wait_ms.unwrap().nullable().optional(),
  models: policy.models.unwrap().nullable().optional(),
  budget_usd: policy.budget_usd.unwrap().nullable().optional(),
  token_quota: policy.token_quota.unwrap().nullable().optional(),
  expires_at: policy.expires_at.unwrap().nullable().optional(),
  disabled: policy.disabled.unwrap().nullable().optional(),
  on_shutdown: policy.on_shutdown.unwrap().nullable().optional(),
  metadata: policy.metadata.unwrap().nullable().optional(),
};

const usageWindow = z.object({
  window: z.string().describe('2026-11-26, 2026-11 or total'),
  requests: z.number().int(),
  input_tokens: z.number().int().describe('cached included'),
  cached_tokens: z.number().int(),
  output_tokens: z.number().int(),
  total_tokens: z.number().int(),
  cost_usd: z.number().describe('settled cost of the usage the upstream reported'),
  reserved_usd: z.number().describe('reserved by requests in flight, or never settled (counted by budgets)'),
});
const capState = z.object({ limit: z.number(), used: z.number(), remaining: z.number(), resets_at: z.string().nullable() });

export const keyView = z.object({
  object: z.literal('tollgate.key'),
  id: z.string(),
  source: z.enum(['config', 'api']).describe('config: read-only here; api: created through the admin API'),
  status: z.enum(['active', 'disabled', 'expired', 'revoked']),
  ...policy,
  key_hint: z.string().nullable().describe('the secret prefix and last four characters'),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
});

export const usageReport = z.object({
  object: z.literal('tollgate.key.usage'),
  id: z.string(),
  usage: z.object({ today: usageWindow, month: usageWindow, total: usageWindow }),
  budget_usd: z.record(z.string(), capState).describe('per window the key has a budget for'),
  token_quota: z.record(z.string(), capState),
  rate_limits: z.record(z.string(), z.record(z.string(), z.string())).describe('per model: the x-ratelimit-* figures now'),
});

const errorEnvelope = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }),
});

export const SCHEMAS = {
  idParams: z.strictObject({ id: keyId }),
  usageQuery: z.strictObject({ model: z.union([z.string().min(1), z.array(z.string().min(1))]).optional() }),
  createBody: z.strictObject({ id: keyId, ...policy }),
  patchBody: z.strictObject(patchFields),
  keyView,
  keyWithSecret: keyView.extend({ key: z.string().describe('the secret: shown this once, never again') }),
  keyList: z.object({ object: z.literal('list'), data: z.array(keyView) }),
  usageReport,
  error: errorEnvelope,
} as const;

export type SchemaName = keyof typeof SCHEMAS;

/** The property that names a JSON schema's zod original (it survives Fastify copying schemas). */
export const SCHEMA_NAME = 'x-tollgate-schema';

const jsonSchemas = new Map<SchemaName, Record<string, unknown>>();

/** The JSON Schema of one of SCHEMAS, tagged with its name. */
export function jsonSchema(name: SchemaName): Record<string, unknown> {
  let found = jsonSchemas.get(name);
  if (!found) {
    const { $schema: _ignored, ...rest } = z.toJSONSchema(SCHEMAS[name], { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    found = { ...rest, [SCHEMA_NAME]: name };
    jsonSchemas.set(name, found);
  }
  return found;
}

/** A validator for Fastify (setValidatorCompiler): zod's result, or the first problem as a 400. */
export function zodValidator(schema: Record<string, unknown>): (data: unknown) => { value?: unknown; error?: Error } {
  const name = schema[SCHEMA_NAME] as SchemaName | undefined;
  const zodSchema = name && SCHEMAS[name];
  if (!zodSchema) throw new Error(`admin route schema without ${SCHEMA_NAME}`);
  return (data) => {
    const result = zodSchema.safeParse(data ?? {});
    return result.success ? { value: result.data } : { error: badInput(result.error.issues, data) };
  };
}

/** OpenAI's wording: `Missing required parameter: 'tier'.`, `Unknown parameter: 'x'.`, `Invalid 'budget_usd.daily': …`. */
function badInput(issues: readonly z.core.$ZodIssue[], data: unknown): InvalidRequestError {
  const issue = issues[0] as z.core.$ZodIssue;
  const at = issue.path.map(String);
  let value: unknown = data;
  for (const part of issue.path) value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[part] : undefined;
  if (issue.code === 'unrecognized_keys') {
    const param = [...at, issue.keys[0] ?? ''].join('.');
    return new InvalidRequestError(`Unknown parameter: '${param}'.`, param, 'unknown_parameter');
  }
  const param = issue.path.reduce<string>((text, part) => (typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${String(part)}` : String(part)), '') || null;
  if (value === undefined && param) {
    return new InvalidRequestError(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  }
  return new InvalidRequestError(param ? `Invalid '${param}': ${issue.message}.` : `Invalid request: ${issue.message}.`, param, 'invalid_value');
}
