import type { Registry } from 'prom-client';
import type { ModelPricesNano } from '../config/catalogue.js';
import { costOf, ZERO_COST, type Cost } from '../usage/cost.js';
import type { Usage } from '../usage/extract.js';
import { Tally, type Cell } from './tally.js';

/** `reported`: the upstream's usage object; `estimated`: the settlement estimate (client gone, stream cut). */
export type UsageSource = 'reported' | 'estimated';

/**
 * Tokens, cost, prompt-cache savings and unpriced tokens per key and model. Every figure is an
 * integer (tokens, nano-dollars) added to a cell; dollars are exposed as nano-dollars / 1e9, so a
 * sum over any series is exact to the nano-dollar.
 */
export interface UsageMetrics {
  /**
   * Count one request's (or batch's) usage, at the Batch prices when `batch`; returns its cost,
   * which the log line shows. Positional arguments: this runs on every request.
   */
  count(key: string, model: string, usage: Usage, source: UsageSource, batch?: boolean): Cost;
  /** A response cache hit: what the stored answer cost, now saved (`source="response_cache"`). */
  countSaved(key: string, model: string, nanoDollars: number): void;
}

/** Token type label: `input` is uncached input (prompt − cached), so the three types add up to the total. */
interface TokenCells {
  readonly input: Cell;
  readonly cachedInput: Cell;
  readonly output: Cell;
}

/** The cells of one key and model, made on its first request. */
interface Entry {
  readonly prices: ModelPricesNano | undefined;
  readonly reported: TokenCells;
  estimated: TokenCells | undefined;
  /** Priced models: cost by type, and what cached input saved. Unpriced: tokens counted as unpriced. */
  readonly cost: TokenCells | undefined;
  readonly saved: Cell | undefined;
  /** Made on the key and model's first response cache hit. */
  savedByResponseCache: Cell | undefined;
  /** Cost of unit-priced requests (images, speech, transcription, video, containers) by unit, made on first use. */
  byUnit: Map<string, TokenCells> | undefined;
  /** Built-in tool calls (`type="tool_calls"`, `unit="calls"`), made on first use. */
  toolCalls: Cell | undefined;
  readonly unpriced: TokenCells | undefined;
}

export interface UsageMetricsOptions {
  readonly registry: Registry;
  /** The model's prices by its metric label (catalogue name); undefined: unpriced. */
  readonly pricesOf: (model: string) => ModelPricesNano | undefined;
}

export function createUsageMetrics(options: UsageMetricsOptions): UsageMetrics {
  const { registry } = options;
  const tokens = new Tally({
    name: 'tollgate_tokens_total',
    help: 'Tokens by key id, model, type (input = uncached input, cached_input, output) and source (reported by the upstream, or estimated when usage could not be read).',
    labelNames: ['key', 'model', 'type', 'source'],
    registry,
  });
  const cost = new Tally({
    name: 'tollgate_cost_usd_total',
    help: 'Spend in US dollars at the catalogue prices (Batch prices for batches), by key id, model, type (input, cached_input, output; tool_calls for built-in tool calls) and the unit it was priced in (tokens, images, characters, minutes of audio, seconds of video, container sessions, calls). Exact to the nano-dollar.',
    labelNames: ['key', 'model', 'type', 'unit'],
    registry,
    divisor: 1e9,
  });
  const saved = new Tally({
    name: 'tollgate_saved_usd_total',
    help: "US dollars saved, by key id, model and source: prompt_cache (the provider's cached input: cached tokens × (input price − cached-input price)) or response_cache (tollgate's exact-repeat cache: the stored answer's whole cost).",
    labelNames: ['key', 'model', 'source'],
    registry,
    divisor: 1e9,
  });
  const unpriced = new Tally({
    name: 'tollgate_unpriced_tokens_total',
    help: 'Tokens of models without a price in the catalogue (their cost is counted as 0), by key id, model and type.',
    labelNames: ['key', 'model', 'type'],
    registry,
  });

  const typed = (tally: Tally<string>, labels: Record<string, string>): TokenCells => ({
    input: tally.cell({ ...labels, type: 'input' }),
    cachedInput: tally.cell({ ...labels, type: 'cached_input' }),
    output: tally.cell({ ...labels, type: 'output' }),
  });

  const entries = new Map<string, Map<string, Entry>>();
  const entryOf = (key: string, model: string): Entry => {
    let byModel = entries.get(key);
    if (!byModel) entries.set(key, (byModel = new Map()));
    let entry = byModel.get(model);
    if (!entry) {
      const prices = options.pricesOf(model);
      entry = {
        prices,
        reported: typed(tokens, { key, model, source: 'reported' }),
        estimated: undefined,
        cost: prices && typed(cost, { key, model, unit: 'tokens' }),
        saved: prices && saved.cell({ key, model, source: 'prompt_cache' }),
        savedByResponseCache: undefined,
        byUnit: undefined,
        toolCalls: undefined,
        unpriced: prices ? undefined : typed(unpriced, { key, model }),
      };
      byModel.set(model, entry);
    }
    return entry;
  };

  const unitCells = (entry: Entry, key: string, model: string, unit: string): TokenCells => {
    const byUnit = (entry.byUnit ??= new Map());
    let cells = byUnit.get(unit);
    if (!cells) byUnit.set(unit, (cells = unit === 'tokens' && entry.cost ? entry.cost : typed(cost, { key, model, unit })));
    return cells;
  };

  return {
    count(key, model, usage, source, batch = false) {
      const entry = entryOf(key, model);
      const cached = Math.min(usage.cachedTokens, usage.inputTokens);
      const uncached = usage.inputTokens - cached;
      const counts = source === 'reported' ? entry.reported : (entry.estimated ??= typed(tokens, { key, model, source }));
      add(counts, uncached, cached, usage.outputTokens);
      if (usage.billed) {
        // Priced by unit (images, speech, transcription, video; containers without a model).
        const spent = costOf(entry.prices, usage, batch);
        add(unitCells(entry, key, model, usage.billed.unit), spent.input, spent.cachedInput, spent.output);
        return spent;
      }
      if (!entry.prices) {
        add(entry.unpriced as TokenCells, uncached, cached, usage.outputTokens);
        return ZERO_COST;
      }
      const spent = costOf(entry.prices, usage, batch);
      add(entry.cost as TokenCells, spent.input, spent.cachedInput, spent.output);
      if (spent.toolCalls) (entry.toolCalls ??= cost.cell({ key, model, type: 'tool_calls', unit: 'calls' })).value += spent.toolCalls;
      if (!batch && cached > 0) (entry.saved as Cell).value += savedByCache(entry.prices, cached, spent.cachedInput);
      return spent;
    },
    countSaved(key, model, nanoDollars) {
      const entry = entryOf(key, model);
      if (!entry.prices) return;
      (entry.savedByResponseCache ??= saved.cell({ key, model, source: 'response_cache' })).value += nanoDollars;
    },
  };
}

function add(cells: TokenCells, input: number, cachedInput: number, output: number): void {
  cells.input.value += input;
  cells.cachedInput.value += cachedInput;
  cells.output.value += output;
}

/** What the cached tokens would have cost at the input price, minus what they cost: the same cost function. */
function savedByCache(prices: ModelPricesNano, cachedTokens: number, cachedCost: number): number {
  const atInputPrice = costOf(prices, { inputTokens: cachedTokens, cachedTokens: 0, outputTokens: 0 }).input;
  return Math.max(0, atInputPrice - cachedCost);
}
