import { z } from 'zod';
import { TIER_NAMES } from './defaults.js';
import { keyId, keyPolicyFields } from './key-policy.js';

/**
 * The config file's schema. The `Config` type is derived from it, so the file format,
 * its validation and the code that reads it cannot drift apart.
 */

/**
 * Numbers, booleans and null may arrive as strings from `${VAR}` substitution (which never
 * changes a value's type, so a numeric secret stays a string); these fields read them.
 */
function fromText(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  if (text === 'null' || text === '~') return null;
  return value;
}
const positiveInt = z.preprocess(fromText, z.number().int().positive());
const nonNegativeInt = z.preprocess(fromText, z.number().int().nonnegative());
/** A limit: a positive integer, or null for "no limit of that kind". */
const limitValue = z.preprocess(fromText, z.number().int().positive().nullable());
const boolean = z.preprocess(fromText, z.boolean());

const tierLimits = z.strictObject({
  rpm: limitValue.optional(),
  rpd: limitValue.optional(),
  tpm: limitValue.optional(),
  batch_queue_tokens: limitValue.optional(),
});

const price = z.preprocess(fromText, z.number().nonnegative());

const modelEntry = z.strictObject({
  name: z.string().min(1),
  aliases: z.array(z.string().min(1)).default([]),
  context_window: positiveInt.optional(),
  max_output_tokens: positiveInt.optional(),
  price_per_1m: z
    .strictObject({
      input: price,
      cached_input: price.optional(),
      output: price.optional(),
      batch_input: price.optional(),
      batch_output: price.optional(),
    })
    .optional(),
  route_to: z.string().min(1).optional(),
  /** The day the provider shuts this model down (YYYY-MM-DD, UTC midnight). */
  shutdown_date: z.iso.date().optional(),
  /** The catalogue model that replaces it. */
  successor: z.string().min(1).optional(),
  /** From the shutdown date on: refuse it (404 naming the successor) or serve the successor instead. */
  on_shutdown: z.enum(['reject', 'route_to_successor']).optional(),
});

/** An upstream's ceiling: what its credential's organisation allows, per model (a tier, or figures). */
const ceilingFigures = z.strictObject({ rpm: limitValue.optional(), tpm: limitValue.optional() });
const ceiling = z.union([
  z.enum(TIER_NAMES).transform((tier) => ({ tier, models: {} })),
  z.strictObject({
    tier: z.enum(TIER_NAMES).optional(),
    rpm: limitValue.optional(),
    tpm: limitValue.optional(),
    /** Per model (catalogue name) figures over the tier's. */
    models: z.record(z.string().min(1), ceilingFigures).default({}),
  }),
]);

/** One member of the upstream pool: its own credential, models, weight, connection and ceiling. */
const upstreamEntry = z.strictObject({
  id: keyId,
  url: z.url(),
  /** The credential of this upstream (usually `${ENV}`); never logged nor returned. */
  api_key: z.string().min(1).optional(),
  organization: z.string().min(1).optional(),
  project: z.string().min(1).optional(),
  /** `azure`: the key goes in `api-key`; with `deployments`, paths become /deployments/{name}/… */
  kind: z.enum(['openai', 'azure']).default('openai'),
  /** Azure deployments by catalogue model name; the url is then the resource's `/openai` base. */
  deployments: z.record(z.string().min(1), z.string().min(1)).optional(),
  /** The api-version query of Azure's deployment paths. */
  api_version: z.string().min(1).default('2024-10-21'),
  /** Catalogue model names this upstream serves; absent: every model. */
  models: z.array(z.string().min(1)).min(1).optional(),
  weight: positiveInt.default(1),
  connections: positiveInt.optional(),
  connect_timeout_ms: positiveInt.optional(),
  headers_timeout_ms: positiveInt.optional(),
  body_timeout_ms: positiveInt.optional(),
  ceiling: ceiling.optional(),
});

const keyEntry = z
  .strictObject({
    id: keyId,
    key: z.string().min(8, 'a key secret must have at least 8 characters').optional(),
    key_sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal characters (a SHA-256 digest)')
      .optional(),
    ...keyPolicyFields({
      count: nonNegativeInt,
      positive: positiveInt,
      limit: limitValue,
      usd: z.preprocess(fromText, z.number().nonnegative().max(1_000_000, 'at most 1,000,000 US dollars').nullable()),
      bool: boolean,
    }),
  })
  .refine((k) => (k.key === undefined) !== (k.key_sha256 === undefined), {
    message: 'give exactly one of `key` or `key_sha256`',
  });

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      /** Largest JSON body accepted. 32 MiB admits a full 1,047,576-token context. */
      body_limit_bytes: positiveInt.default(32 * 1024 * 1024),
      /** Largest streamed upload (files, audio, image edits). OpenAI's own file limit is 512 MB. */
      upload_limit_bytes: positiveInt.default(512 * 1024 * 1024),
      /** How long SIGTERM waits for in-flight requests and streams before closing them. */
      shutdown_grace_ms: nonNegativeInt.default(30_000),
      /**
       * Requests per minute one client address may make with a missing or wrong key before it is
       * refused with 429 (floods of failed auth); 0 turns the guard off.
       */
      unauthenticated_rpm: nonNegativeInt.default(60),
      /** Where fastify reads the client address from when behind a load balancer. */
      trust_proxy: z.union([boolean, z.string(), z.array(z.string())]).default(false),
    })
    .prefault({}),
  upstream: z
    .strictObject({
      /** Overrides TOLLGATE_UPSTREAM_URL when set. */
      url: z.url().optional(),
      /** Optional OpenAI-Organization / OpenAI-Project sent upstream (clients' own are dropped). */
      organization: z.string().min(1).optional(),
      project: z.string().min(1).optional(),
      connections: positiveInt.default(256),
      connect_timeout_ms: positiveInt.default(10_000),
      /** Time allowed until the upstream's response headers arrive. */
      headers_timeout_ms: positiveInt.default(600_000),
      /** Longest silence allowed between two chunks of a response body. */
      body_timeout_ms: positiveInt.default(300_000),
      /**
       * Several OpenAI-compatible deployments of the same models (e.g. self-hosted replicas with
       * prefix caching); when given, they replace `url`, and requests are spread over them with
       * prefix affinity.
       */
      targets: z.array(z.strictObject({ url: z.url() })).default([]),
      /** Bounded load: no target takes more than this factor of the mean in-flight load when its turn comes. */
      balance_factor: z.preprocess(fromText, z.number().min(1)).default(1.25),
    })
    .prefault({}),
  /** A pool of upstreams; when given, it replaces `upstream.url` / `upstream.targets` (whose connection settings stay the defaults). */
  upstreams: z
    .array(upstreamEntry)
    .default([])
    .refine((list) => new Set(list.map((u) => u.id)).size === list.length, { message: 'upstream ids must be unique' }),
  retry: z
    .strictObject({
      /** Attempts per request, the first included, over the pool's upstreams (1: no retries). */
      max_attempts: positiveInt.default(3),
      /** No attempt starts later than this after the first. */
      deadline_ms: positiveInt.default(30_000),
      /** Full-jitter backoff before retrying the same upstream: random(0, min(max, base × 2^n)). */
      base_backoff_ms: nonNegativeInt.default(100),
      max_backoff_ms: nonNegativeInt.default(2_000),
    })
    .prefault({}),
  outlier_detection: z
    .strictObject({
      /** Consecutive failed attempts (connect errors, timeouts, 5xx) that eject an upstream; 0: never. */
      consecutive_failures: nonNegativeInt.default(5),
      /** The first ejection's length; each further one doubles it, up to max_ejection_ms. */
      base_ejection_ms: positiveInt.default(10_000),
      max_ejection_ms: positiveInt.default(300_000),
    })
    .prefault({}),
  models: z
    .strictObject({
      /** `reject`: 404 model_not_found for a model outside the catalogue; `pass_through`: forward it. */
      unknown: z.enum(['reject', 'pass_through']).default('reject'),
      /** Merged over the built-in catalogue by `name`. */
      catalogue: z.array(modelEntry).default([]),
    })
    .prefault({}),
  tiers: z.partialRecord(z.enum(TIER_NAMES), tierLimits).default({}),
  estimation: z
    .strictObject({
      chars_per_token: z.preprocess(fromText, z.number().positive()).default(4),
      /**
       * The tokenizer (o200k_base) counts exactly only when the character estimate reaches this
       * share of the context window; below it the estimate decides.
       */
      exact_count_threshold: z.preprocess(fromText, z.number().gt(0).max(1)).default(0.5),
    })
    .prefault({}),
  redis: z
    .strictObject({
      /** Redis Cluster seed nodes (`host:port`); when given, tollgate uses the cluster instead of REDIS_URL. */
      cluster_nodes: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Output tokens reserved for a request that names no output cap (settled to the real usage). */
      default_output_tokens: nonNegativeInt.default(4096),
      /** Prefix of the limiter's Redis keys. */
      key_prefix: z.string().default('tollgate:'),
      /** Bound on every limiter call to Redis. */
      redis_timeout_ms: positiveInt.default(250),
      /** When Redis fails: refuse with 503 (`fail_closed`) or limit locally (`fail_open`). */
      on_redis_error: z.enum(['fail_closed', 'fail_open']).default('fail_closed'),
      /**
       * How often one gateway instance asks the upstream about the batches still holding batch
       * queue tokens (released when terminal); 0: only when clients retrieve or cancel them.
       */
      batch_check_interval_ms: nonNegativeInt.default(60_000),
      /** Fail-open divides every limit by this: the number of gateway instances sharing the keys. */
      instances: positiveInt.default(1),
      /**
       * The tier of the gateway's own OpenAI organisation: a ceiling per model on the sum of all
       * keys, so clients meet tollgate's 429 instead of OpenAI's. Unset: no ceiling.
       */
      organization: z.strictObject({ tier: z.enum(TIER_NAMES), name: z.string().min(1).default('gateway') }).optional(),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** false: requests are neither counted nor timed (the log line stays), and /metrics answers 404. */
      enabled: boolean.default(true),
      /** false: every key is labelled `all`, for deployments with very many keys (bounded series). */
      per_key_labels: boolean.default(true),
    })
    .prefault({}),
  key_store: z
    .strictObject({
      /**
       * How long an instance trusts its cached copy of a key created through the admin API. Changes
       * reach every instance at once by Redis pub/sub; this bounds the staleness if a message is lost.
       */
      cache_ttl_ms: positiveInt.default(5_000),
    })
    .prefault({}),
  usage: z
    .strictObject({
      /**
       * Usage of keys without budgets or token quotas is counted in process and written to the
       * store this often (keys with budgets or quotas are counted in the admission itself).
       */
      flush_interval_ms: positiveInt.default(1_000),
    })
    .prefault({}),
  caching: z
    .strictObject({
      response_cache: z
        .strictObject({
          /** Without Redis: the in-memory cache's size bound (least recently used entries go first). */
          memory_max_bytes: positiveInt.default(64 * 1024 * 1024),
        })
        .prefault({}),
      prefix_steering: z
        .strictObject({
          /** Set a `prompt_cache_key` from the prompt's stable head when the client sent none. */
          enabled: boolean.default(true),
          /** Requests per minute one fingerprint + key may take before another shard is opened (OpenAI overflows above ~15). */
          shard_rpm: positiveInt.default(12),
          /** Prompts estimated below this many tokens are left alone (OpenAI caches from 1024). */
          min_prompt_tokens: positiveInt.default(1024),
          /** Characters of the prompt's head the fingerprint covers (~256 tokens, what OpenAI routes on). */
          head_chars: positiveInt.default(1024),
        })
        .prefault({}),
    })
    .prefault({}),
  keys: z.array(keyEntry).default([]),
});

export type Config = z.infer<typeof configSchema>;
export type KeyEntry = Config['keys'][number];
export type ModelEntry = z.infer<typeof modelEntry>;
export type UpstreamEntry = Config['upstreams'][number];
