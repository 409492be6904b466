import type { ModelPricesNano, RealtimePricesNano } from '../config/catalogue.js';
import type { Bill, RealtimeTokens, Usage } from './extract.js';

/**
 * What a request cost, in integer nano-dollars, split by token type. Used by metrics, logs and
 * (later) budgets, so every figure of spend comes from this one function.
 */
export interface Cost {
  /** Uncached input tokens (prompt − cached) at the input price. */
  readonly input: number;
  /** Cached input tokens at the cached-input price (0 for batch: no separate cached price). */
  readonly cachedInput: number;
  readonly output: number;
  /** Built-in tool calls (web and file searches) of a Responses answer, at their per-call prices. */
  readonly toolCalls?: number;
  readonly total: number;
}

export const ZERO_COST: Cost = { input: 0, cachedInput: 0, output: 0, total: 0 };

/**
 * tokens × (nano-dollars per 1M tokens) / 1M, rounded to the nearest nano-dollar. With the
 * catalogue's default prices every token costs a whole number of nano-dollars, so nothing is
 * rounded; an operator's price with more than nine decimals per 1M tokens is rounded per request.
 */
export function nano(tokens: number, pricePerMillion: number): number {
  if (tokens === 0 || pricePerMillion === 0) return 0;
  const product = tokens * pricePerMillion;
  if (Number.isSafeInteger(product)) return Math.round(product / 1_000_000);
  // Beyond 2^53 the double product is inexact: do it in integers.
  return Number((BigInt(tokens) * BigInt(pricePerMillion) + 500_000n) / 1_000_000n);
}

/**
 * The cost of one answer's usage. `prompt_tokens` includes `cached_tokens`: the uncached part is
 * billed at the input price, the cached part at the cached-input price. Batch results are billed
 * at the Batch prices, which have no separate cached price. `undefined` prices: the model has no
 * price (callers count it as unpriced, at 0).
 */
export function costOf(prices: ModelPricesNano | undefined, usage: Usage, batch = false): Cost {
  if (usage.billed) return billedCost(usage.billed);
  if (!prices) return ZERO_COST;
  if (prices.realtime && !batch) return realtimeCost(prices, prices.realtime, usage);
  const cached = Math.min(usage.cachedTokens, usage.inputTokens);
  const uncached = usage.inputTokens - cached;
  if (batch) {
    const input = nano(usage.inputTokens, prices.batchInput);
    const output = nano(usage.outputTokens, prices.batchOutput);
    return { input, cachedInput: 0, output, total: input + output };
  }
  const input = nano(uncached, prices.input);
  const cachedInput = nano(cached, prices.cachedInput);
  const output = nano(usage.outputTokens, prices.output);
  const calls = usage.toolCalls;
  if (calls && prices.toolCalls) {
    const toolCalls = calls.webSearch * prices.toolCalls.webSearch + calls.fileSearch * prices.toolCalls.fileSearch;
    return { input, cachedInput, output, toolCalls, total: input + cachedInput + output + toolCalls };
  }
  return { input, cachedInput, output, total: input + cachedInput + output };
}

/**
 * A realtime model's cost, each modality at its own price. Usage without the split (a reservation:
 * estimated input + output cap) is priced at the dearest modality, so a reservation never
 * undercounts what the answer may cost.
 */
function realtimeCost(prices: ModelPricesNano, modal: RealtimePricesNano, usage: Usage): Cost {
  const split = usage.realtime;
  if (!split) {
    const cached = Math.min(usage.cachedTokens, usage.inputTokens);
    const input = nano(usage.inputTokens - cached, Math.max(prices.input, modal.audioInput, modal.imageInput));
    const cachedInput = nano(cached, Math.max(prices.cachedInput, modal.cachedAudioInput, modal.cachedImageInput));
    const output = nano(usage.outputTokens, Math.max(prices.output, modal.audioOutput));
    return { input, cachedInput, output, total: input + cachedInput + output };
  }
  const t: RealtimeTokens = split;
  const uncached = (all: number, cached: number): number => all - Math.min(cached, all);
  const input = nano(uncached(t.textIn, t.cachedText), prices.input) + nano(uncached(t.audioIn, t.cachedAudio), modal.audioInput) + nano(uncached(t.imageIn, t.cachedImage), modal.imageInput);
  const cachedInput =
    nano(Math.min(t.cachedText, t.textIn), prices.cachedInput) + nano(Math.min(t.cachedAudio, t.audioIn), modal.cachedAudioInput) + nano(Math.min(t.cachedImage, t.imageIn), modal.cachedImageInput);
  const output = nano(t.textOut, prices.output) + nano(t.audioOut, modal.audioOutput);
  return { input, cachedInput, output, total: input + cachedInput + output };
}

/** A unit-priced request: its bill, already in nano-dollars. */
function billedCost(bill: Bill): Cost {
  return { input: bill.input, cachedInput: bill.cachedInput, output: bill.output, total: bill.input + bill.cachedInput + bill.output };
}

/** Nano-dollars as US dollars, for display (logs, the admin API). Exact sums stay in nano-dollars. */
export function nanoToUsd(nanoDollars: number): number {
  return nanoDollars / 1e9;
}
