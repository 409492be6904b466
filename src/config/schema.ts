import { z } from 'zod';
import { MODAL_TOKEN_TYPES, TIER_NAMES } from './defaults.js';
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
  rpm: limitValue.optional().describe('Requests per minute (null: no limit of that kind).'),
  rpd: limitValue.optional().describe('Requests per day (null: no limit of that kind).'),
  tpm: limitValue.optional().describe('Tokens per minute, input + output (null: no limit of that kind).'),
  batch_queue_tokens: limitValue.optional().describe("Input tokens of a model's pending batches (null: no limit of that kind)."),
});

const price = z.preprocess(fromText, z.number().nonnegative());

const modelEntry = z.strictObject({
  name: z.string().min(1).describe('The model name clients send; an entry with a built-in name changes that model.'),
  aliases: z.array(z.string().min(1)).default([]).describe("Other names of the same model: they share its identity, limits and prices."),
  context_window: positiveInt.optional().describe('Largest prompt in tokens (counted exactly near the limit); a longer prompt is refused with 400 context_length_exceeded.'),
  max_output_tokens: positiveInt.optional().describe('Largest output cap a request may ask for (400 invalid_value above it).'),
  price_per_1m: z
    .strictObject({
      input: price.describe('US dollars per 1M input tokens.'),
      cached_input: price.optional().describe('Per 1M cached input tokens; absent: the input price.'),
      output: price.optional().describe('Per 1M output tokens; absent: 0.'),
      batch_input: price.optional().describe('Per 1M input tokens through the Batch API; absent: half the input price.'),
      batch_output: price.optional().describe('Per 1M output tokens through the Batch API; absent: half the output price.'),
      audio_input: price.optional().describe('Realtime: per 1M audio input tokens.'),
      cached_audio_input: price.optional().describe('Realtime: per 1M cached audio input tokens.'),
      image_input: price.optional().describe('Realtime: per 1M image input tokens.'),
      cached_image_input: price.optional().describe('Realtime: per 1M cached image input tokens.'),
      audio_output: price.optional().describe('Realtime: per 1M audio output tokens.'),
    })
    .optional()
    .describe('Prices in US dollars per 1M tokens; absent: the model is unpriced (cost 0, counted in tollgate_unpriced_tokens_total).'),
  unit_prices: z
    .strictObject({
      per_image: z
        .record(z.string().min(1), price)
        .optional()
        .describe('US dollars per image by `quality:size` (dall-e-2, dall-e-3), e.g. `standard:1024x1024`, `hd:1792x1024`; a size or quality not listed is reserved and billed at the dearest entry.'),
      tokens_per_1m: z
        .partialRecord(z.enum(MODAL_TOKEN_TYPES), price)
        .optional()
        .describe(
          'Token-priced media models (gpt-image-1, gpt-4o-mini-tts, gpt-4o-transcribe): US dollars per 1M tokens by modality, applied to the usage the answer reports; a type not listed costs 0.',
        ),
      image_output_tokens: z
        .record(z.string().min(1), positiveInt)
        .optional()
        .describe('Output tokens one image takes by `quality:size` (gpt-image-1), reserved per image (`n`) before the answer reports usage; `auto` quality or size reserves the largest.'),
      per_1m_characters: price.optional().describe('US dollars per 1M characters of speech input (tts-1, tts-1-hd).'),
      audio_tokens_per_character: z
        .preprocess(fromText, z.number().positive())
        .optional()
        .describe('Audio output tokens reserved per input character (gpt-4o-mini-tts); the binary answer reports no usage, so it is also what is billed then.'),
      per_minute: price
        .optional()
        .describe('US dollars per minute of audio (whisper-1, billed by the second); for token-priced transcription models the rate of the reservation and of answers without usage.'),
      audio_bytes_per_second: positiveInt
        .optional()
        .describe('Bytes per second of uploaded audio assumed when reserving a transcription before its duration is known (default 4000: 32 kbps).'),
      per_second: z
        .record(z.string().min(1), price)
        .optional()
        .describe('US dollars per second of video by `size` (sora-2, sora-2-pro), e.g. `720x1280`; a size not listed is billed at the dearest entry.'),
    })
    .optional()
    .describe('Prices of images, speech, transcription and video by their own unit (docs/pricing-units.md); merged over the built-in entry field by field.'),
  route_to: z.string().min(1).optional().describe("Forward requests for this name upstream as this model (the body's `model` is rewritten)."),
  shutdown_date: z.iso.date().optional().describe('The day the provider shuts this model down (YYYY-MM-DD, UTC midnight).'),
  successor: z.string().min(1).optional().describe('The catalogue model that replaces it.'),
  on_shutdown: z
    .enum(['reject', 'route_to_successor'])
    .optional()
    .describe('From the shutdown date on: refuse it (404 naming the successor) or serve the successor instead.'),
});

/** An upstream's ceiling: what its credential's organisation allows, per model (a tier, or figures). */
const ceilingFigures = z.strictObject({ rpm: limitValue.optional().describe('Requests per minute.'), tpm: limitValue.optional().describe('Tokens per minute.') });
const ceiling = z.union([
  z.enum(TIER_NAMES).transform((tier) => ({ tier, models: {} })),
  z.strictObject({
    tier: z.enum(TIER_NAMES).optional().describe('The tier whose figures apply.'),
    rpm: limitValue.optional().describe('Requests per minute over the tier.'),
    tpm: limitValue.optional().describe('Tokens per minute over the tier.'),
    models: z.record(z.string().min(1), ceilingFigures).default({}).describe("Per model (catalogue name) figures over the tier's."),
  }),
]);

/** One member of the upstream pool: its own credential, models, weight, connection and ceiling. */
const upstreamEntry = z.strictObject({
  id: keyId.describe("The upstream's name (headers, logs, metrics)."),
  url: z.url().describe('Base URL, e.g. https://api.openai.com/v1.'),
  api_key: z.string().min(1).optional().describe('The credential of this upstream (usually `${ENV}`); never logged nor returned.'),
  organization: z.string().min(1).optional().describe('OpenAI-Organization sent to this upstream.'),
  project: z.string().min(1).optional().describe('OpenAI-Project sent to this upstream.'),
  kind: z.enum(['openai', 'azure']).default('openai').describe('`azure`: the key goes in `api-key`; with `deployments`, paths become /deployments/{name}/….'),
  deployments: z.record(z.string().min(1), z.string().min(1)).optional().describe("Azure deployments by catalogue model name; the url is then the resource's `/openai` base."),
  api_version: z.string().min(1).default('2024-10-21').describe("The api-version query of Azure's deployment paths."),
  models: z.array(z.string().min(1)).min(1).optional().describe('Catalogue model names this upstream serves; absent: every model.'),
  weight: positiveInt.default(1).describe('Share of traffic among the upstreams with headroom.'),
  connections: positiveInt.optional().describe('Connections to this upstream (default: upstream.connections).'),
  connect_timeout_ms: positiveInt.optional().describe('Default: upstream.connect_timeout_ms.'),
  headers_timeout_ms: positiveInt.optional().describe('Default: upstream.headers_timeout_ms.'),
  body_timeout_ms: positiveInt.optional().describe('Default: upstream.body_timeout_ms.'),
  ceiling: ceiling.optional().describe("What this credential's organisation allows: a tier name, or figures."),
});

const keyEntry = z
  .strictObject({
    id: keyId,
    key: z.string().min(8, 'a key secret must have at least 8 characters').optional().describe('The secret clients send as `Authorization: Bearer …`, usually `${SOME_ENV}`; held only as its SHA-256. Give `key` or `key_sha256`.'),
    key_sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal characters (a SHA-256 digest)')
      .optional()
      .describe('The SHA-256 of the secret in hex (`printf %s "$SECRET" | sha256sum`), so the secret never sits in the file.'),
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
      body_limit_bytes: positiveInt.default(32 * 1024 * 1024).describe('Largest JSON body accepted (413 above it). 32 MiB admits a full 1,047,576-token context.'),
      upload_limit_bytes: positiveInt.default(512 * 1024 * 1024).describe("Largest streamed upload: files, audio, image edits (413 above it). OpenAI's own file limit is 512 MB."),
      multipart_hold_bytes: positiveInt
        .default(64 * 1024 * 1024)
        .describe(
          'Largest multipart upload that names a model (audio transcriptions, image edits, videos): held whole until its fields are read and the key\'s policy admits it, so nothing of it reaches the upstream first (413 above it). OpenAI takes audio up to 25 MB and images up to 50 MB.',
        ),
      shutdown_grace_ms: nonNegativeInt.default(30_000).describe('How long SIGTERM waits for in-flight requests and streams before closing them.'),
      body_idle_timeout_ms: nonNegativeInt
        .default(30_000)
        .describe('A request body that makes no progress for this long is answered 408 and its connection closed; 0 turns it off. Answers and streams are never timed.'),
      max_request_headers: positiveInt
        .default(100)
        .describe("Most headers a request may carry (431 beyond). Node's HTTP parser itself keeps at most about 1,000 and 16 KiB of them."),
      unauthenticated_rpm: nonNegativeInt
        .default(60)
        .describe('Requests per minute one client address may make with a missing or wrong key (or admin token) before it is refused with 429; 0 turns the guard off.'),
      trust_proxy: z
        .union([boolean, z.string(), z.array(z.string())])
        .default(false)
        .describe("fastify's `trustProxy` (true, an address, or a list): where the client address is read from behind a load balancer."),
      server_timing: boolean
        .default(true)
        .describe('`Server-Timing: tollgate;dur=…, upstream;dur=…` on every /v1 answer: what the gateway added, and the upstream time.'),
    })
    .prefault({})
    .describe('The HTTP server.'),
  upstream: z
    .strictObject({
      url: z.url().optional().describe('Upstream base URL, path prefix included; overrides TOLLGATE_UPSTREAM_URL (default https://api.openai.com/v1).'),
      organization: z.string().min(1).optional().describe("Sent upstream as OpenAI-Organization (clients' own are dropped)."),
      project: z.string().min(1).optional().describe("Sent upstream as OpenAI-Project (clients' own are dropped)."),
      connections: positiveInt.default(256).describe('Upstream connection pool size (per target).'),
      connect_timeout_ms: positiveInt.default(10_000).describe('TCP/TLS connect timeout (504 upstream_timeout when passed).'),
      headers_timeout_ms: positiveInt.default(600_000).describe("Time allowed until the upstream's response headers arrive (504 upstream_timeout when passed)."),
      body_timeout_ms: positiveInt.default(300_000).describe('Longest silence allowed between two chunks of a response body (mid-stream: an in-stream error event).'),
      targets: z
        .array(z.strictObject({ url: z.url().describe('Base URL of one deployment, path prefix included.') }))
        .default([])
        .describe('Several OpenAI-compatible deployments of the same models (e.g. self-hosted replicas with prefix caching); when given, they replace `url`, and requests are spread over them with prefix affinity.'),
      balance_factor: z
        .preprocess(fromText, z.number().min(1))
        .default(1.25)
        .describe('Bounded load: no target takes more than this factor of the mean in-flight load when its turn comes.'),
    })
    .prefault({})
    .describe('Where requests go and how long they may take.'),
  upstreams: z
    .array(upstreamEntry)
    .default([])
    .refine((list) => new Set(list.map((u) => u.id)).size === list.length, { message: 'upstream ids must be unique' })
    .describe('A pool of upstreams; when given, it replaces `upstream.url` / `upstream.targets`.'),
  retry: z
    .strictObject({
      max_attempts: positiveInt.default(3).describe("Attempts per request, the first included, over the pool's upstreams (1: no retries)."),
      deadline_ms: positiveInt.default(30_000).describe('No attempt starts later than this after the first.'),
      base_backoff_ms: nonNegativeInt.default(100).describe('Full-jitter backoff before retrying the same upstream: random(0, min(max, base × 2^n)).'),
      max_backoff_ms: nonNegativeInt.default(2_000).describe('The backoff\'s ceiling.'),
    })
    .prefault({})
    .describe('Retries and failover before the answer\'s first byte.'),
  outlier_detection: z
    .strictObject({
      consecutive_failures: nonNegativeInt.default(5).describe('Consecutive failed attempts (connect errors, timeouts, 5xx) that eject an upstream; 0: never.'),
      base_ejection_ms: positiveInt.default(10_000).describe("The first ejection's length; each further one doubles it."),
      max_ejection_ms: positiveInt.default(300_000).describe('The longest ejection.'),
      failure_percentage: z
        .preprocess(fromText, z.number().min(0).max(100))
        .default(0)
        .describe("Failed attempts, in percent of an upstream's attempts within one interval, that eject it (Envoy's failure_percentage); 0: never."),
      failure_percentage_request_volume: positiveInt
        .default(50)
        .describe('The attempts an upstream must have had within the interval before its failure percentage can eject it.'),
      interval_ms: positiveInt.default(10_000).describe('The interval the failure percentage is counted over; the counts start over at each.'),
    })
    .prefault({})
    .describe('Ejection of failing upstreams (per instance).'),
  models: z
    .strictObject({
      unknown: z.enum(['reject', 'pass_through']).default('reject').describe('A model outside the catalogue: `reject` (404 model_not_found) or `pass_through` (forwarded, unpriced, under the `other` label).'),
      catalogue: z.array(modelEntry).default([]).describe('Model entries merged over the built-in catalogue by `name`.'),
      upstream_refresh_ms: nonNegativeInt
        .default(0)
        .describe("How often every upstream's `GET /models` is read for shutdown dates of catalogue models without their own `shutdown_date` (also once at start); 0: never."),
      tool_call_prices: z
        .strictObject({
          web_search: price.optional().describe('US dollars per `web_search_call` (default $0.01).'),
          file_search: price.optional().describe('US dollars per `file_search_call` (default $0.0025).'),
        })
        .prefault({})
        .describe("Built-in tool calls a Responses answer reports (`output` items), charged per call on top of the model's tokens for every model with token prices."),
      container_prices: z
        .record(z.string().min(1), price)
        .default({})
        .describe(
          "US dollars per container created (`POST /v1/containers`) by its `memory_limit`, merged over the built-in prices (1g $0.03, 4g $0.12, 16g $0.48, 64g $1.92); a container without a `memory_limit` is priced as `1g`, one with a limit not listed at the dearest.",
        ),
    })
    .prefault({})
    .describe('The model catalogue: names, aliases, context windows, output caps, prices.'),
  tiers: z
    .partialRecord(z.enum(TIER_NAMES), tierLimits)
    .default({})
    .describe("Overrides of the built-in tier table (OpenAI's usage tiers for gpt-4.1-nano), per tier and figure."),
  estimation: z
    .strictObject({
      chars_per_token: z.preprocess(fromText, z.number().positive()).default(4).describe("The prompt token estimate's divisor: characters / this."),
      exact_count_threshold: z
        .preprocess(fromText, z.number().gt(0).max(1))
        .default(0.5)
        .describe('The tokenizer (o200k_base) counts exactly only when the character estimate reaches this share of the context window; below it the estimate decides.'),
    })
    .prefault({})
    .describe("The prompt token estimate that admission reserves before the upstream's usage is known."),
  redis: z
    .strictObject({
      cluster_nodes: z.array(z.string().min(1)).default([]).describe('Redis Cluster seed nodes (`host:port`); when given, tollgate uses the cluster instead of REDIS_URL.'),
    })
    .prefault({})
    .describe('Redis beyond REDIS_URL.'),
  limits: z
    .strictObject({
      default_output_tokens: nonNegativeInt.default(4096).describe('Output tokens reserved for a request that names no output cap (settled to the real usage).'),
      key_prefix: z.string().default('tollgate:').describe("Prefix of tollgate's Redis keys (buckets, usage counters, run-time keys, cache entries)."),
      redis_timeout_ms: positiveInt.default(250).describe("Bound on every Redis command (the client's command timeout): limiter, key store, usage counters, response cache."),
      on_redis_error: z
        .enum(['fail_closed', 'fail_open'])
        .default('fail_closed')
        .describe('When Redis fails: refuse limited requests with 503 (`fail_closed`) or limit in process memory with a local share of every limit, budget and quota (`fail_open`).'),
      batch_check_interval_ms: nonNegativeInt
        .default(60_000)
        .describe('How often one gateway instance asks the upstream about the batches still holding batch queue tokens (released when terminal); 0: only when clients retrieve or cancel them.'),
      instances: positiveInt.default(1).describe('The number of gateway instances sharing the keys: fail-open divides every limit by it, and prefix steering multiplies its local rate by it.'),
      organization: z
        .strictObject({
          tier: z.enum(TIER_NAMES).describe("The tier of the gateway's own OpenAI organisation."),
          name: z.string().min(1).default('gateway').describe("The name tollgate's ceiling 429s give the organisation."),
        })
        .optional()
        .describe("A ceiling per model on the sum of all keys, from the gateway's own organisation's tier, so clients meet tollgate's 429 instead of OpenAI's. Unset: no ceiling."),
      fair_share: z
        .strictObject({
          enabled: boolean
            .default(false)
            .describe(
              "Share every upstream's ceiling between the keys (or groups, see a key's `fair_share`) that use it: each active one is guaranteed its weight's part of the ceiling's RPM and TPM, and may borrow what the others leave unused.",
            ),
          active_window_ms: positiveInt
            .default(3_000)
            .describe('A key or group without a request for this long is no longer active: its share goes to the others (how fast the others take over).'),
          burst_ms: positiveInt
            .default(60_000)
            .describe(
              "The most an active key or group keeps in reserve of its share while it does not use it: its guaranteed rate over this many ms (the rest of the ceiling's burst can be borrowed). A request larger than that waits for room the others leave.",
            ),
        })
        .prefault({})
        .describe("Fair share of contended upstream ceilings (needs a ceiling: an upstream's `ceiling` or `limits.organization`)."),
    })
    .prefault({})
    .describe('Rate limits, budgets and quotas: reservations and the failure policy.'),
  metrics: z
    .strictObject({
      enabled: boolean.default(true).describe('false: requests are neither counted nor timed (the log line keeps its tokens and cost), and GET /metrics answers 404.'),
      per_key_labels: boolean
        .default(true)
        .describe('false: every key is labelled `all`, for deployments with very many keys (tollgate_ratelimit_remaining then shows the lowest key).'),
    })
    .prefault({})
    .describe('GET /metrics.'),
  key_store: z
    .strictObject({
      cache_ttl_ms: positiveInt
        .default(5_000)
        .describe('How long an instance trusts its cached copy of a key created through the admin API. Changes reach every instance at once by Redis pub/sub; this bounds the staleness if a message is lost.'),
    })
    .prefault({})
    .describe('Run-time keys (admin API, CLI).'),
  usage: z
    .strictObject({
      flush_interval_ms: positiveInt
        .default(1_000)
        .describe('Usage of keys without budgets or token quotas is counted in process and written to the store this often (keys with budgets or quotas are counted in the admission itself).'),
      hourly_retention_days: z
        .preprocess(fromText, z.number().int().min(0).max(35))
        .default(8)
        .describe(
          "Days each key's hourly usage buckets (requests, tokens, cost per UTC hour, for the console's hourly charts) are kept after their hour. Written with the request's existing settlement call. 0: no hourly buckets.",
        ),
    })
    .prefault({})
    .describe('Usage counters.'),
  console: z
    .strictObject({
      self_service: boolean
        .default(true)
        .describe('Team members sign in to /console/ with their own key and see only that key. The console is off (404) when this is false and no admin token is set.'),
      session_ttl_s: positiveInt.default(8 * 3600).describe('How long a console session lasts after sign-in, in seconds.'),
      history_days: z
        .preprocess(fromText, z.number().int().min(1).max(35))
        .default(30)
        .describe("Days of daily usage the console's charts show (the daily usage hashes are kept 35 days)."),
    })
    .prefault({})
    .describe('The browser console at /console/.'),
  caching: z
    .strictObject({
      response_cache: z
        .strictObject({
          memory_max_bytes: positiveInt.default(64 * 1024 * 1024).describe("Without Redis: the in-memory cache's size bound (least recently used entries go first)."),
          store_timeout_ms: positiveInt
            .optional()
            .describe('Bound on each response-cache lookup and store in Redis; beyond it the lookup is a miss (and the store is given up). Unset: `limits.redis_timeout_ms`.'),
          flight_wait_ms: positiveInt
            .default(30_000)
            .describe('The longest an identical request waits for the answer of the one in flight before it goes upstream itself.'),
        })
        .prefault({})
        .describe('The exact-repeat response cache (turned on per key with `keys[].cache`).'),
      prefix_steering: z
        .strictObject({
          enabled: boolean.default(true).describe("Set a `prompt_cache_key` from the prompt's stable head when the client sent none."),
          shard_rpm: positiveInt.default(12).describe('Requests per minute one fingerprint + key may take before another shard is opened (OpenAI overflows above ~15).'),
          min_prompt_tokens: positiveInt.default(1024).describe('Prompts estimated below this many tokens are left alone (OpenAI caches from 1024).'),
          head_chars: positiveInt.default(1024).describe("Characters of the prompt's head the fingerprint covers (~256 tokens, what OpenAI routes on)."),
        })
        .prefault({})
        .describe("Steering for OpenAI's prompt cache."),
    })
    .prefault({})
    .describe('Caching of repeated input.'),
  realtime: z
    .strictObject({
      max_buffered_bytes: positiveInt
        .default(1024 * 1024)
        .describe("Bytes one side of a realtime session may have waiting to be sent before the other side's reading pauses."),
      ping_interval_ms: nonNegativeInt.default(30_000).describe('Each side is pinged this often; a peer that has not answered the previous ping is dropped (0: off).'),
      client_secret_ttl_s: positiveInt.default(600).describe('Lifetime of a tollgate-minted ephemeral secret (`ek_…`) when the request names none.'),
      client_secret_max_ttl_s: positiveInt.default(7200).describe('Longest lifetime a client may ask for an ephemeral secret.'),
      audio_bytes_per_token: positiveInt.default(800).describe('Input audio bytes (24 kHz PCM16) estimated as one token when reserving; settled to the reported usage.'),
    })
    .prefault({})
    .describe('Realtime sessions over WebSocket (/v1/realtime).'),
  keys: z.array(keyEntry).default([]).describe('Client keys from the file (read-only to the admin API).'),
});

export type Config = z.infer<typeof configSchema>;
export type KeyEntry = Config['keys'][number];
export type ModelEntry = z.infer<typeof modelEntry>;
export type UpstreamEntry = Config['upstreams'][number];
