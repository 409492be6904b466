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
  /** Responses answers: the built-in tool calls among their output items, priced per call. */
  readonly toolCalls?: ToolCallCounts | undefined;
}

/** Built-in tool calls an answer reports (output items `web_search_call`, `file_search_call`). */
export interface ToolCallCounts {
  readonly webSearch: number;
  readonly fileSearch: number;
}

/** The tool calls among a Responses answer's `output` items; undefined when there are none. */
export function toolCallsOfOutput(output: unknown): ToolCallCounts | undefined {
  if (!Array.isArray(output)) return undefined;
  let webSearch = 0;
  let fileSearch = 0;
  for (const item of output) {
    const type = record(item)?.type;
    if (type === 'web_search_call') webSearch++;
    else if (type === 'file_search_call') fileSearch++;
  }
  return webSearch + fileSearch > 0 ? { webSearch, fileSearch } : undefined;
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
  const usage = readUsage(shape, record(body)?.usage);
  if (!usage || shape !== 'responses') return usage;
  const toolCalls = toolCallsOfOutput(record(body)?.output);
  return toolCalls ? { ...usage, toolCalls } : usage;
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
    const response = record(record(safeParse(event.data))?.response);
    const usage = readUsage('responses', response?.usage);
    const toolCalls = usage && toolCallsOfOutput(response?.output);
    return toolCalls ? { ...usage, toolCalls } : usage;
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

const TOOL_CALL_PATTERNS: readonly (readonly [Buffer, 'webSearch' | 'fileSearch'])[] = [
  [Buffer.from('"type":"web_search_call"'), 'webSearch'],
  [Buffer.from('"type": "web_search_call"'), 'webSearch'],
  [Buffer.from('"type":"file_search_call"'), 'fileSearch'],
  [Buffer.from('"type": "file_search_call"'), 'fileSearch'],
];
const TOOL_CALL_OVERLAP = Math.max(...TOOL_CALL_PATTERNS.map(([p]) => p.length)) - 1;

/**
 * Counts the built-in tool calls of a JSON Responses answer as it streams past, chunk by chunk (the
 * output items come before the `usage` its tail gives). Inside a JSON string a quote is escaped, so
 * `"type":"web_search_call"` can only be an item's own `type` member. A match across two chunks is
 * found in the last bytes kept from the one before (one byte short of the longest pattern).
 */
export class ToolCallScanner {
  private carry: Buffer | undefined;
  private webSearch = 0;
  private fileSearch = 0;

  push(chunk: Buffer): void {
    const carry = this.carry;
    if (carry) {
      // Matches across the boundary: starting in the kept bytes, ending in this chunk.
      const junction = Buffer.concat([carry, chunk.subarray(0, TOOL_CALL_OVERLAP)]);
      for (const [pattern, kind] of TOOL_CALL_PATTERNS) {
        for (let at = junction.indexOf(pattern); at !== -1 && at < carry.length; at = junction.indexOf(pattern, at + 1)) {
          if (at + pattern.length > carry.length) this[kind]++;
        }
      }
    }
    // Matches wholly inside this chunk, found in place (the chunk is not copied).
    for (const [pattern, kind] of TOOL_CALL_PATTERNS) {
      for (let at = chunk.indexOf(pattern); at !== -1; at = chunk.indexOf(pattern, at + pattern.length)) this[kind]++;
    }
    const tail = chunk.subarray(Math.max(0, chunk.length - TOOL_CALL_OVERLAP));
    // A chunk shorter than the overlap keeps what came before it too.
    this.carry = Buffer.from(carry && tail.length < TOOL_CALL_OVERLAP ? Buffer.concat([carry, tail]).subarray(-TOOL_CALL_OVERLAP) : tail);
  }

  /** What the answer reported; undefined when it had no tool calls. */
  counts(): ToolCallCounts | undefined {
    return this.webSearch + this.fileSearch > 0 ? { webSearch: this.webSearch, fileSearch: this.fileSearch } : undefined;
  }
}
