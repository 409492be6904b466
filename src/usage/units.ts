import type { UnitPricesNano } from '../config/catalogue.js';
import { nano } from './cost.js';
import type { Bill, BillUnit, Usage } from './extract.js';
import { lastObjectMember } from './json-tail.js';

/**
 * Pricing by unit: images, speech, transcription and video (docs/pricing-units.md). Admission
 * quotes a request from its parameters (the most it can cost: `n`, size, quality, the input's
 * characters, the upload's size, seconds); the quote is reserved against budgets like a token
 * estimate, and the answer settles it to what it reports. Every figure is integer nano-dollars.
 */
export type UnitKind = 'images' | 'speech' | 'transcription' | 'video' | 'containers';

export interface UnitQuote {
  /** The most the request can cost: reserved before, and billed (as estimated) when the answer does not tell. */
  readonly reserved: Usage;
  /**
   * The bill the answer states (its JSON: the first and last bytes); undefined when it does not
   * (the reservation then stands). A bill fixed by the request's parameters is the reservation.
   */
  settle(head: Buffer, tail: Buffer): Usage | undefined;
}

/** A request parameter: a JSON body's member or a form's text field. */
export type Param = (name: string) => unknown;

export interface QuoteInput {
  readonly param: Param;
  /** Bytes of the uploaded files (multipart forms), 0 for JSON bodies. */
  readonly fileBytes: number;
  /** The estimator's characters per token, for text input (prompts, speech input). */
  readonly charsPerToken: number;
}

/** The quote of a request to a unit-priced endpoint; undefined when the model has no price for that unit. */
export function quoteUnits(kind: UnitKind, prices: UnitPricesNano | undefined, input: QuoteInput): UnitQuote | undefined {
  if (!prices) return undefined;
  switch (kind) {
    case 'images':
      return quoteImages(prices, input);
    case 'speech':
      return quoteSpeech(prices, input);
    case 'transcription':
      return quoteTranscription(prices, input);
    case 'video':
      return quoteVideo(prices, input);
    case 'containers':
      return quoteContainer(prices, input);
  }
}

/** A bill as settlement usage: token counts only where tokens are the unit. */
export function usageOfBill(bill: Bill, inputTokens = 0, outputTokens = 0): Usage {
  return { inputTokens, cachedTokens: 0, outputTokens, billed: bill };
}

function bill(unit: BillUnit, quantity: number, input: number, output: number, cachedInput = 0): Bill {
  return { unit, quantity, input, cachedInput, output };
}

const fixed = (usage: Usage): UnitQuote => ({ reserved: usage, settle: () => usage });

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** A positive integer parameter (a number, or a form field's digits); undefined when absent or not one. */
function count(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function chars(value: unknown): number {
  if (typeof value !== 'string') return 0;
  let n = 0;
  for (const _ of value) n++;
  return n;
}

function maxOf(values: Iterable<number>): number {
  let max = 0;
  for (const v of values) if (v > max) max = v;
  return max;
}

/** The table's entry for `quality:size`; a quality or size it does not list (or `auto`) takes the dearest entry that fits the rest. */
function lookup(table: ReadonlyMap<string, number>, quality: string | undefined, size: string | undefined): number {
  const exact = quality !== undefined && size !== undefined ? table.get(`${quality}:${size}`) : undefined;
  if (exact !== undefined) return exact;
  const fits: number[] = [];
  for (const [key, value] of table) {
    const [q, s] = key.split(':');
    if ((quality === undefined || !hasQuality(table, quality) || q === quality) && (size === undefined || !hasSize(table, size) || s === size)) fits.push(value);
  }
  return fits.length ? maxOf(fits) : maxOf(table.values());
}

const hasQuality = (table: ReadonlyMap<string, number>, quality: string): boolean => [...table.keys()].some((k) => k.startsWith(`${quality}:`));
const hasSize = (table: ReadonlyMap<string, number>, size: string): boolean => [...table.keys()].some((k) => k.endsWith(`:${size}`));

function estimateTokens(characters: number, charsPerToken: number): number {
  return characters === 0 ? 0 : Math.ceil(characters / charsPerToken);
}

/**
 * Images. dall-e-2/3: per image by quality and size, `n` images (a fixed bill). gpt-image-1: by
 * tokens: the prompt's estimated text tokens and `n` × the output tokens of one image at the
 * requested quality and size are reserved; the answer's usage (text and image input, image output
 * tokens) is billed.
 */
function quoteImages(prices: UnitPricesNano, { param, charsPerToken }: QuoteInput): UnitQuote | undefined {
  const n = count(param('n')) ?? 1;
  const size = text(param('size'));
  const quality = text(param('quality'));
  if (prices.perImage) {
    // dall-e-2 has one quality; dall-e-3's default is standard.
    const each = lookup(prices.perImage, quality === undefined || quality === 'auto' ? 'standard' : quality, size === undefined || size === 'auto' ? '1024x1024' : size);
    return fixed(usageOfBill(bill('images', n, 0, n * each)));
  }
  const t = prices.tokens;
  if (!t || !prices.imageOutputTokens) return undefined;
  const perImage = lookup(prices.imageOutputTokens, quality === 'auto' ? undefined : quality, size === 'auto' ? undefined : size);
  const textTokens = estimateTokens(chars(param('prompt')), charsPerToken);
  const outputTokens = n * perImage;
  const reserved = usageOfBill(bill('tokens', textTokens + outputTokens, nano(textTokens, t.text_input), nano(outputTokens, t.image_output)), textTokens, outputTokens);
  return {
    reserved,
    settle(_head, tail) {
      const u = record(lastObjectMember(tail));
      if (!u) return undefined;
      const inputTokens = int(u.input_tokens);
      const details = record(u.input_tokens_details);
      const imageIn = Math.min(int(details?.image_tokens), inputTokens);
      const textIn = details?.text_tokens === undefined ? inputTokens - imageIn : Math.min(int(details.text_tokens), inputTokens - imageIn);
      const output = int(u.output_tokens);
      const input = nano(textIn, t.text_input) + nano(imageIn, t.image_input);
      return usageOfBill(bill('tokens', inputTokens + output, input, nano(output, t.image_output)), inputTokens, output);
    },
  };
}

/**
 * Speech. tts-1, tts-1-hd: per character of `input` (a fixed bill). gpt-4o-mini-tts: by tokens;
 * its answer is the audio itself, without usage, so the bill is the reservation: the text's
 * estimated tokens (input and instructions) and `audio_tokens_per_character` audio tokens per
 * input character. A stream (`stream_format: "sse"`) reports usage in its last event: billed.
 */
function quoteSpeech(prices: UnitPricesNano, { param, charsPerToken }: QuoteInput): UnitQuote | undefined {
  const characters = chars(param('input'));
  if (prices.perMillionCharacters !== undefined) return fixed(usageOfBill(bill('characters', characters, nano(characters, prices.perMillionCharacters), 0)));
  const t = prices.tokens;
  if (!t) return undefined;
  const textTokens = estimateTokens(characters + chars(param('instructions')), charsPerToken);
  const audioTokens = Math.ceil(characters * (prices.audioTokensPerCharacter ?? 2));
  const reserved = usageOfBill(bill('tokens', textTokens + audioTokens, nano(textTokens, t.text_input), nano(audioTokens, t.audio_output)), textTokens, audioTokens);
  return {
    reserved,
    // A stream (`stream_format: "sse"`) ends with `speech.audio.done` and its usage.
    settle(_head, tail) {
      const u = record(lastObjectMember(tail));
      if (!u || u.input_tokens === undefined) return undefined;
      const input = int(u.input_tokens);
      const output = int(u.output_tokens);
      return usageOfBill(bill('tokens', input + output, nano(input, t.text_input), nano(output, t.audio_output)), input, output);
    },
  };
}

/**
 * Transcription and translation. The reservation is the upload's duration at most: its bytes at
 * `audio_bytes_per_second`, at the per-minute rate. The answer settles it: token usage
 * (gpt-4o-transcribe: text and audio input, text output), or a duration (`usage.seconds`, or
 * verbose_json's `duration`) at the per-minute rate, billed by the second.
 */
function quoteTranscription(prices: UnitPricesNano, { fileBytes }: QuoteInput): UnitQuote | undefined {
  const perMinute = prices.perMinute;
  const t = prices.tokens;
  if (perMinute === undefined && !t) return undefined;
  const bySeconds = (seconds: number): Usage => usageOfBill(bill('minutes', seconds / 60, Math.round((seconds * (perMinute ?? 0)) / 60), 0));
  const reserved = bySeconds(Math.max(1, Math.ceil(fileBytes / prices.audioBytesPerSecond)));
  return {
    reserved,
    settle(head, tail) {
      const u = record(lastObjectMember(tail));
      if (u?.type === 'tokens' && t) {
        const inputTokens = int(u.input_tokens);
        const details = record(u.input_token_details);
        const audioIn = Math.min(int(details?.audio_tokens), inputTokens);
        const textIn = inputTokens - audioIn;
        const output = int(u.output_tokens);
        return usageOfBill(bill('tokens', inputTokens + output, nano(textIn, t.text_input) + nano(audioIn, t.audio_input), nano(output, t.text_output)), inputTokens, output);
      }
      if (perMinute === undefined) return undefined;
      const seconds = u?.type === 'duration' && typeof u.seconds === 'number' ? u.seconds : durationIn(head);
      return seconds === undefined ? undefined : bySeconds(Math.round(seconds));
    },
  };
}

const DURATION = /"duration"\s*:\s*(\d+(?:\.\d+)?)/;

/** verbose_json's `duration` (seconds), near the start of the answer. */
function durationIn(head: Buffer): number | undefined {
  const match = DURATION.exec(head.toString('latin1'));
  return match ? Number(match[1]) : undefined;
}

/** Videos: `seconds` × the per-second price of `size` (sora-2 defaults: 4 seconds, 720x1280); the job the answer describes settles it. */
function quoteVideo(prices: UnitPricesNano, { param }: QuoteInput): UnitQuote | undefined {
  const table = prices.perSecond;
  if (!table) return undefined;
  const of = (seconds: number, size: string): Usage => {
    const perSecond = table.get(size) ?? maxOf(table.values());
    return usageOfBill(bill('seconds', seconds, 0, seconds * perSecond));
  };
  const reserved = of(count(param('seconds')) ?? 4, text(param('size')) ?? '720x1280');
  return {
    reserved,
    settle(head) {
      const answer = head.toString('utf8');
      const seconds = /"seconds"\s*:\s*"?(\d+)"?/.exec(answer)?.[1];
      const size = /"size"\s*:\s*"([^"]+)"/.exec(answer)?.[1];
      return seconds !== undefined && size !== undefined ? of(Number(seconds), size) : reserved;
    },
  };
}

/** A code-interpreter container: one session at the price of its `memory_limit` (default 1g). */
function quoteContainer(prices: UnitPricesNano, { param }: QuoteInput): UnitQuote | undefined {
  const table = prices.perContainer;
  if (!table) return undefined;
  const each = table.get(text(param('memory_limit')) ?? '1g') ?? maxOf(table.values());
  return fixed(usageOfBill(bill('sessions', 1, 0, each)));
}

function int(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.trunc(value) : 0;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
