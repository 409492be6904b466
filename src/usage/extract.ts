import type { UsageShape } from '../usage/shape.js';
import type { SseEvent } from '../streaming/sse.js';

/**
 * One usage extractor for every endpoint that reports usage, JSON bodies and streams alike.
 * `inputTokens` includes `cachedTokens`, as OpenAI's `prompt_tokens` does.
 */
export interface Usage {
  readonly inputTokens: number;
  readonly cachedTokens: number;
  readonly outputTokens: number;
  /** Realtime answers: the same tokens split by modality (priced apart, src/usage/cost.ts). */
  readonly realtime?: RealtimeTokens | undefined;
  /** Images, speech, transcription, video: the cost worked out by unit (src/usage/units.ts); the tokens above are then only counted. */
  readonly billed?: Bill | undefined;
}

/** What a unit-priced request costs, in integer nano-dollars split as token costs are, with the unit it was counted in. */
export interface Bill {
  readonly unit: BillUnit;
  /** How many units (images, characters, seconds of audio or video, tokens). */
  readonly quantity: number;
  readonly input: number;
  readonly cachedInput: number;
  readonly output: number;
}

/** The unit label of cost metrics. Audio billed per minute is counted in (whole or fractional) seconds of its duration. */
export type BillUnit = 'tokens' | 'images' | 'characters' | 'minutes' | 'seconds' | 'sessions';

/** A realtime `usage` by modality; `*In` include the cached tokens of that modality, as OpenAI's do. */
export interface RealtimeTokens {
  readonly textIn: number;
  readonly audioIn: number;
  readonly imageIn: number;
  readonly cachedText: number;
  readonly cachedAudio: number;
  readonly cachedImage: number;
  readonly textOut: number;
  readonly audioOut: number;
}

function int(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.trunc(value) : 0;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** Read a `usage` object of the given shape. */
export function readUsage(shape: UsageShape, usage: unknown): Usage | undefined {
  const u = record(usage);
  if (!u) return undefined;
  if (shape === 'responses') {
    return {
      inputTokens: int(u.input_tokens),
      cachedTokens: int(record(u.input_tokens_details)?.cached_tokens),
      outputTokens: int(u.output_tokens),
    };
  }
  return {
    inputTokens: int(u.prompt_tokens),
    cachedTokens: int(record(u.prompt_tokens_details)?.cached_tokens),
    outputTokens: shape === 'embeddings' ? 0 : int(u.completion_tokens),
  };
}

/** Usage of a complete JSON answer. */
export function usageFromBody(shape: UsageShape, body: unknown): Usage | undefined {
  return readUsage(shape, record(body)?.usage);
}

const RESPONSES_TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

const DONE = Buffer.from('[DONE]');
const USAGE_OBJECT = Buffer.from('"usage":{');
const USAGE_OBJECT_SPACED = Buffer.from('"usage": {');

/** Whether this event ends the stream successfully (`[DONE]`, or a Responses terminal event). */
export function isTerminalEvent(shape: UsageShape, event: SseEvent): boolean {
  if (shape === 'responses') return event.event !== undefined && RESPONSES_TERMINAL.has(event.event);
  return event.dataBytes.equals(DONE);
}

/**
 * Usage carried by one stream event, if any. Cheap on the common path: only events that can
 * carry usage are parsed (chat/completions: the chunk with a usage object; responses: the
 * terminal event).
 */
export function usageFromEvent(shape: UsageShape, event: SseEvent): Usage | undefined {
  if (shape === 'responses') {
    if (event.event === undefined || !RESPONSES_TERMINAL.has(event.event)) return undefined;
    const parsed = safeParse(event.data);
    return readUsage('responses', record(record(parsed)?.response)?.usage);
  }
  if (!event.dataIncludes(USAGE_OBJECT) && !event.dataIncludes(USAGE_OBJECT_SPACED)) return undefined;
  return usageFromBody(shape, safeParse(event.data));
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
