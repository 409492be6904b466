import { DEFAULT_CONTAINER_PRICES, DEFAULT_MODELS, DEFAULT_TIERS, DEFAULT_TOOL_CALL_PRICES, MODAL_TOKEN_TYPES, TIER_NAMES, type ModalTokenType, type TierLimits, type TierName } from './defaults.js';
import type { Config, ModelEntry } from './schema.js';
import { ConfigError } from './load.js';

/** One model as the gateway knows it. Aliases resolve to the same object (one shared limit). */
export interface ModelInfo {
  /** Canonical catalogue name: the identity for limits, prices and metric labels. */
  readonly name: string;
  readonly contextWindow: number | undefined;
  readonly maxOutputTokens: number | undefined;
  /** Integer prices; undefined when the catalogue names no price (counted as unpriced). */
  readonly prices: ModelPricesNano | undefined;
  /** Upstream model name when the operator maps this model onto another one. */
  readonly routeTo: string | undefined;
  /** Set when the catalogue names a shutdown date. */
  readonly retirement?: ModelRetirement | undefined;
}

export type OnShutdown = 'reject' | 'route_to_successor';

/** A model the provider retires, with what its answers say until then (built once, not per request). */
export interface ModelRetirement {
  readonly model: string;
  /** YYYY-MM-DD, as configured. */
  readonly shutdownDate: string;
  readonly shutdownMs: number;
  readonly successor: string | undefined;
  readonly onShutdown: OnShutdown;
  /** The `sunset` header (RFC 8594): the shutdown as an HTTP date. */
  readonly sunset: string;
  /** The `x-tollgate-model-deprecated` header: the model, its shutdown date and successor. */
  readonly notice: string;
}

function retirementOf(entry: ModelEntry): ModelRetirement | undefined {
  const date = entry.shutdown_date;
  if (date === undefined) return undefined;
  return retirement(entry, date, Date.parse(`${date}T00:00:00Z`), entry.successor);
}

function retirement(entry: ModelEntry, shutdownDate: string, shutdownMs: number, successor: string | undefined): ModelRetirement {
  return {
    model: entry.name,
    shutdownDate,
    shutdownMs,
    successor,
    onShutdown: entry.on_shutdown ?? 'reject',
    sunset: new Date(shutdownMs).toUTCString(),
    notice: `${entry.name}; shutdown=${shutdownDate}${successor === undefined ? '' : `; successor=${successor}`}`,
  };
}

/** A shutdown date an upstream's `GET /models` reports (src/upstream/model-dates.ts). */
export interface LearnedShutdown {
  /** The instant; `shutdownDate` is its UTC day. */
  readonly shutdownMs: number;
  readonly shutdownDate: string;
  /** The successor the upstream names (taken when it is a catalogue model and the entry names none). */
  readonly successor?: string | undefined;
}

/**
 * Prices in integer nano-dollars per 1M tokens ($0.025 / 1M = 25,000,000). Exact for any price with
 * up to nine decimals; the cost of N tokens is N × price / 1e6 nano-dollars.
 */
export interface ModelPricesNano {
  readonly input: number;
  readonly cachedInput: number;
  readonly output: number;
  readonly batchInput: number;
  readonly batchOutput: number;
  /** Realtime models only: the other modalities' prices (the fields above are text's). */
  readonly realtime?: RealtimePricesNano | undefined;
  /** Images, speech, transcription, video: prices by their own unit (src/usage/units.ts). */
  readonly units?: UnitPricesNano | undefined;
  /** Only unit prices: the token prices above are zeros, not prices (a budgeted token request is refused as unpriced). */
  readonly unitsOnly?: true | undefined;
  /** Built-in tool calls of Responses answers, nano-dollars per call (token-priced models). */
  readonly toolCalls?: ToolCallPricesNano | undefined;
}

/** Unit prices in integer nano-dollars (per image, per 1M characters, per minute, per second; per 1M tokens by modality). */
export interface UnitPricesNano {
  readonly perImage?: ReadonlyMap<string, number> | undefined;
  readonly tokens?: Readonly<Record<ModalTokenType, number>> | undefined;
  readonly imageOutputTokens?: ReadonlyMap<string, number> | undefined;
  readonly perMillionCharacters?: number | undefined;
  readonly audioTokensPerCharacter?: number | undefined;
  readonly perMinute?: number | undefined;
  readonly audioBytesPerSecond: number;
  readonly perSecond?: ReadonlyMap<string, number> | undefined;
  /** Containers, by memory limit (not a model's: the catalogue's `containers`). */
  readonly perContainer?: ReadonlyMap<string, number> | undefined;
}

type UnitFields = NonNullable<ModelEntry['unit_prices']>;

const nanoMap = (table: Record<string, number> | undefined): ReadonlyMap<string, number> | undefined =>
  table && new Map(Object.entries(table).map(([k, usd]) => [k, nanoPerMillion(usd)]));

function unitPrices(u: UnitFields): UnitPricesNano {
  const t = u.tokens_per_1m;
  const tokens = t && (Object.fromEntries(MODAL_TOKEN_TYPES.map((type) => [type, nanoPerMillion(t[type] ?? 0)])) as Record<ModalTokenType, number>);
  return {
    perImage: nanoMap(u.per_image),
    tokens,
    imageOutputTokens: u.image_output_tokens && new Map(Object.entries(u.image_output_tokens)),
    perMillionCharacters: u.per_1m_characters === undefined ? undefined : nanoPerMillion(u.per_1m_characters),
    audioTokensPerCharacter: u.audio_tokens_per_character,
    perMinute: u.per_minute === undefined ? undefined : nanoPerMillion(u.per_minute),
    audioBytesPerSecond: u.audio_bytes_per_second ?? 4000,
    perSecond: nanoMap(u.per_second),
  };
}

/** The prices of a model: per token, by unit, or both; undefined when it has neither (unpriced). */
/** Nano-dollars per built-in tool call. */
export interface ToolCallPricesNano {
  readonly webSearch: number;
  readonly fileSearch: number;
}

function pricesOf(entry: ModelEntry, toolCalls: ToolCallPricesNano): ModelPricesNano | undefined {
  const p = entry.price_per_1m;
  const units = entry.unit_prices && { units: unitPrices(entry.unit_prices) };
  if (!p) return units && { input: 0, cachedInput: 0, output: 0, batchInput: 0, batchOutput: 0, ...units, unitsOnly: true };
  return {
    input: nanoPerMillion(p.input),
    cachedInput: nanoPerMillion(p.cached_input ?? p.input),
    output: nanoPerMillion(p.output ?? 0),
    batchInput: nanoPerMillion(p.batch_input ?? p.input / 2),
    batchOutput: nanoPerMillion(p.batch_output ?? (p.output ?? 0) / 2),
    // Only on realtime models: the other models' prices stay five plain figures.
    ...realtimeField(p),
    ...units,
    toolCalls,
  };
}

/** Nano-dollars per 1M audio and image tokens; text tokens use the model's input / cached / output prices. */
export interface RealtimePricesNano {
  readonly audioInput: number;
  readonly cachedAudioInput: number;
  readonly imageInput: number;
  readonly cachedImageInput: number;
  readonly audioOutput: number;
}

type PriceFields = NonNullable<ModelEntry['price_per_1m']>;

function realtimeField(p: PriceFields): { realtime?: RealtimePricesNano } {
  const realtime = realtimePrices(p);
  return realtime ? { realtime } : {};
}

/** A model with any audio or image price is priced by modality (image defaults to text's prices). */
function realtimePrices(p: PriceFields): RealtimePricesNano | undefined {
  if (p.audio_input === undefined && p.audio_output === undefined && p.image_input === undefined) return undefined;
  const audioInput = p.audio_input ?? p.input;
  const imageInput = p.image_input ?? p.input;
  return {
    audioInput: nanoPerMillion(audioInput),
    cachedAudioInput: nanoPerMillion(p.cached_audio_input ?? audioInput),
    imageInput: nanoPerMillion(imageInput),
    cachedImageInput: nanoPerMillion(p.cached_image_input ?? (p.image_input === undefined ? (p.cached_input ?? p.input) : imageInput)),
    audioOutput: nanoPerMillion(p.audio_output ?? p.output ?? 0),
  };
}

function nanoPerMillion(usdPerMillion: number): number {
  return Math.round(usdPerMillion * 1e9);
}

export interface Catalogue {
  /** Resolve a client-supplied model name (canonical or alias); undefined when unknown. */
  resolve(model: string): ModelInfo | undefined;
  readonly models: readonly ModelInfo[];
  tierLimits(tier: TierName): TierLimits;
  /**
   * Shutdown dates learned from the upstreams, by catalogue name: they apply to the models the
   * config gives no `shutdown_date` (the configured date wins); a model learned before and absent
   * now loses its learned date. Returns the models whose retirement changed.
   */
  learnShutdowns(learned: ReadonlyMap<string, LearnedShutdown>): string[];
  /** Container prices (`POST /v1/containers`), as unit prices. */
  readonly containers: UnitPricesNano;
}

function mergeByName(defaults: readonly ModelEntry[], overrides: readonly ModelEntry[]): ModelEntry[] {
  const merged = new Map<string, ModelEntry>();
  for (const entry of defaults) merged.set(entry.name, entry);
  for (const entry of overrides) {
    const base = merged.get(entry.name);
    merged.set(
      entry.name,
      base
        ? {
            ...base,
            ...entry,
            aliases: entry.aliases.length ? entry.aliases : base.aliases,
            // A partial price override keeps the prices it does not name.
            price_per_1m: base.price_per_1m && entry.price_per_1m ? { ...base.price_per_1m, ...entry.price_per_1m } : (entry.price_per_1m ?? base.price_per_1m),
            unit_prices: base.unit_prices && entry.unit_prices ? { ...base.unit_prices, ...entry.unit_prices } : (entry.unit_prices ?? base.unit_prices),
          }
        : entry,
    );
  }
  return [...merged.values()];
}

export function buildCatalogue(config: Config): Catalogue {
  const defaults: ModelEntry[] = DEFAULT_MODELS.map((m) => ({ ...m, aliases: m.aliases ?? [] }));
  const entries = mergeByName(defaults, config.models.catalogue);
  const byName = new Map<string, ModelInfo>();
  const models: ModelInfo[] = [];
  /** The models whose retirement the upstreams may teach: no configured date. */
  const tc = config.models.tool_call_prices;
  const toolCalls: ToolCallPricesNano = {
    webSearch: nanoPerMillion(tc.web_search ?? DEFAULT_TOOL_CALL_PRICES.web_search),
    fileSearch: nanoPerMillion(tc.file_search ?? DEFAULT_TOOL_CALL_PRICES.file_search),
  };
  const learnable = new Map<string, { entry: ModelEntry; info: { retirement?: ModelRetirement | undefined } }>();
  for (const entry of entries) {
    const info: ModelInfo = {
      name: entry.name,
      contextWindow: entry.context_window,
      maxOutputTokens: entry.max_output_tokens,
      routeTo: entry.route_to,
      retirement: retirementOf(entry),
      prices: pricesOf(entry, toolCalls),
    };
    models.push(info);
    if (entry.shutdown_date === undefined) learnable.set(entry.name, { entry, info });
    for (const name of [entry.name, ...entry.aliases]) {
      const clash = byName.get(name);
      if (clash && clash.name !== entry.name) {
        throw new ConfigError(`Invalid config: model name ${name} is used by both ${clash.name} and ${entry.name}`);
      }
      byName.set(name, info);
    }
  }
  for (const entry of entries) checkSuccessor(entry, byName);
  const tiers = new Map<TierName, TierLimits>();
  for (const tier of TIER_NAMES) tiers.set(tier, { ...DEFAULT_TIERS[tier], ...config.tiers[tier] });
  return {
    models,
    containers: { perContainer: nanoMap({ ...DEFAULT_CONTAINER_PRICES, ...config.models.container_prices }), audioBytesPerSecond: 0 },
    resolve: (model) => byName.get(model),
    tierLimits: (tier) => tiers.get(tier) ?? DEFAULT_TIERS[tier],
    learnShutdowns(learned) {
      const changed: string[] = [];
      for (const [name, { entry, info }] of learnable) {
        const date = learned.get(name);
        const before = info.retirement;
        if (date === undefined) {
          if (before === undefined) continue;
          info.retirement = undefined;
        } else {
          const successor = entry.successor ?? (date.successor !== undefined && byName.has(date.successor) ? byName.get(date.successor)?.name : undefined);
          if (before?.shutdownMs === date.shutdownMs && before.successor === successor) continue;
          // The same object the requests read: no lookup is added to the request path.
          info.retirement = retirement(entry, date.shutdownDate, date.shutdownMs, successor);
        }
        changed.push(name);
      }
      return changed;
    },
  };
}

function checkSuccessor(entry: ModelEntry, byName: ReadonlyMap<string, ModelInfo>): void {
  if (entry.successor !== undefined && !byName.has(entry.successor)) {
    throw new ConfigError(`Invalid config: the successor ${entry.successor} of model ${entry.name} is not in the catalogue`);
  }
  if (entry.on_shutdown === 'route_to_successor' && entry.successor === undefined) {
    throw new ConfigError(`Invalid config: model ${entry.name} routes to its successor after shutdown but names none`);
  }
}
