import type { UsageShape } from '../usage/shape.js';
import { isTerminalEvent } from '../usage/extract.js';
import type { SseEvent } from '../streaming/sse.js';

/**
 * A stream, turned into the JSON answer it amounts to, so that one stored form serves streamed and
 * non-streamed requests alike. An assembler gives a result only when it could rebuild the answer
 * faithfully: the stream ended with its terminal event, every choice finished, and nothing in it is
 * of a kind it does not know (audio, legacy function_call, an in-stream error…): then nothing is
 * stored.
 */
export interface StreamAssembler {
  event(event: SseEvent): void;
  /** The answer as JSON bytes, or undefined when the stream cannot be stored. */
  result(): Buffer | undefined;
}

type Json = Record<string, unknown>;

function parse(text: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

export function createAssembler(shape: UsageShape): StreamAssembler | undefined {
  if (shape === 'chat') return new ChatAssembler();
  if (shape === 'responses') return new ResponsesAssembler();
  if (shape === 'completions') return new CompletionsAssembler();
  return undefined;
}

/** Responses: the terminal `response.completed` event carries the whole response. */
class ResponsesAssembler implements StreamAssembler {
  #response: Json | undefined;
  #broken = false;

  event(event: SseEvent): void {
    if (!isTerminalEvent('responses', event)) return;
    const response = parse(event.data)?.response;
    if (event.event === 'response.completed' && typeof response === 'object' && response !== null) this.#response = response as Json;
    else this.#broken = true;
  }

  result(): Buffer | undefined {
    if (this.#broken || !this.#response || this.#response.status !== 'completed') return undefined;
    return Buffer.from(JSON.stringify(this.#response));
  }
}

const DONE = Buffer.from('[DONE]');

interface ToolCall {
  id: unknown;
  type: unknown;
  name: string;
  arguments: string;
}

/**
 * Chat and legacy completions streams: `data:` chunks with `choices`, usage in the last chunk
 * (tollgate asks for it), `[DONE]` at the end. Subclasses accumulate their choices.
 */
abstract class ChoicesAssembler implements StreamAssembler {
  protected head: Json | undefined;
  protected usage: unknown;
  protected broken = false;
  #done = false;

  event(event: SseEvent): void {
    if (this.broken) return;
    if (event.dataBytes.equals(DONE)) {
      this.#done = true;
      return;
    }
    const chunk = parse(event.data);
    if (!chunk || chunk.error !== undefined || !Array.isArray(chunk.choices)) {
      this.broken = true;
      return;
    }
    this.head ??= chunk;
    if (typeof chunk.usage === 'object' && chunk.usage !== null) this.usage = chunk.usage;
    for (const raw of chunk.choices as unknown[]) this.choice(raw as Json);
  }

  protected abstract choice(raw: Json): void;
  /** The answer's choices, or undefined when one did not finish. */
  protected abstract choices(): Json[] | undefined;
  protected abstract answer(head: Json, choices: Json[]): Json;

  result(): Buffer | undefined {
    const head = this.head;
    if (this.broken || !this.#done || !head || this.usage === undefined) return undefined;
    const choices = this.choices();
    return choices && choices.length > 0 ? Buffer.from(JSON.stringify(this.answer(head, choices))) : undefined;
  }
}

const indexOf = (raw: Json): number => (typeof raw.index === 'number' ? raw.index : 0);
const byIndex = <T>(map: Map<number, T>): [number, T][] => [...map].sort((a, b) => a[0] - b[0]);

interface ChatChoice {
  content: string | null;
  refusal: string | null;
  toolCalls: Map<number, ToolCall>;
  logprobs: { content: unknown[]; refusal: unknown[] } | null;
  finishReason: unknown;
}

const CHAT_DELTA_KEYS = new Set(['role', 'content', 'refusal', 'tool_calls']);

/** Chat completions: content, refusal, tool calls and logprobs accumulated per choice. */
class ChatAssembler extends ChoicesAssembler {
  #choices = new Map<number, ChatChoice>();

  protected choice(raw: Json): void {
    const index = indexOf(raw);
    let choice = this.#choices.get(index);
    if (!choice) this.#choices.set(index, (choice = { content: null, refusal: null, toolCalls: new Map(), logprobs: null, finishReason: null }));
    const delta = (raw.delta ?? {}) as Json;
    for (const key in delta) {
      if (!CHAT_DELTA_KEYS.has(key) && delta[key] !== null && delta[key] !== undefined) this.broken = true;
    }
    if (typeof delta.content === 'string') choice.content = (choice.content ?? '') + delta.content;
    if (typeof delta.refusal === 'string') choice.refusal = (choice.refusal ?? '') + delta.refusal;
    if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls as Json[]) toolCall(choice, call);
    const logprobs = raw.logprobs as Json | null | undefined;
    if (logprobs) {
      choice.logprobs ??= { content: [], refusal: [] };
      if (Array.isArray(logprobs.content)) choice.logprobs.content.push(...(logprobs.content as unknown[]));
      if (Array.isArray(logprobs.refusal)) choice.logprobs.refusal.push(...(logprobs.refusal as unknown[]));
    }
    if (raw.finish_reason !== null && raw.finish_reason !== undefined) choice.finishReason = raw.finish_reason;
  }

  protected choices(): Json[] | undefined {
    const choices: Json[] = [];
    for (const [index, choice] of byIndex(this.#choices)) {
      if (choice.finishReason === null) return undefined;
      const message: Json = { role: 'assistant', content: choice.content, refusal: choice.refusal, annotations: [] };
      if (choice.toolCalls.size > 0) {
        message.tool_calls = byIndex(choice.toolCalls).map(([, call]) => ({ id: call.id, type: call.type, function: { name: call.name, arguments: call.arguments } }));
      }
      choices.push({ index, message, logprobs: choice.logprobs, finish_reason: choice.finishReason });
    }
    return choices;
  }

  protected answer(head: Json, choices: Json[]): Json {
    const answer: Json = { id: head.id, object: 'chat.completion', created: head.created, model: head.model, choices, usage: this.usage };
    if (head.service_tier !== undefined) answer.service_tier = head.service_tier;
    if (head.system_fingerprint !== undefined) answer.system_fingerprint = head.system_fingerprint;
    return answer;
  }
}

function toolCall(choice: ChatChoice, call: Json): void {
  const index = indexOf(call);
  let held = choice.toolCalls.get(index);
  if (!held) choice.toolCalls.set(index, (held = { id: undefined, type: 'function', name: '', arguments: '' }));
  if (call.id !== undefined) held.id = call.id;
  if (call.type !== undefined) held.type = call.type;
  const fn = (call.function ?? {}) as Json;
  if (typeof fn.name === 'string') held.name += fn.name;
  if (typeof fn.arguments === 'string') held.arguments += fn.arguments;
}

/** Legacy completions: text per choice (their logprobs are not rebuilt: such streams are not stored). */
class CompletionsAssembler extends ChoicesAssembler {
  #choices = new Map<number, { text: string; finishReason: unknown }>();

  protected choice(raw: Json): void {
    if (raw.logprobs !== null && raw.logprobs !== undefined) this.broken = true;
    const index = indexOf(raw);
    let choice = this.#choices.get(index);
    if (!choice) this.#choices.set(index, (choice = { text: '', finishReason: null }));
    if (typeof raw.text === 'string') choice.text += raw.text;
    if (raw.finish_reason !== null && raw.finish_reason !== undefined) choice.finishReason = raw.finish_reason;
  }

  protected choices(): Json[] | undefined {
    const choices: Json[] = [];
    for (const [index, choice] of byIndex(this.#choices)) {
      if (choice.finishReason === null) return undefined;
      choices.push({ text: choice.text, index, logprobs: null, finish_reason: choice.finishReason });
    }
    return choices;
  }

  protected answer(head: Json, choices: Json[]): Json {
    const answer: Json = { id: head.id, object: 'text_completion', created: head.created, model: head.model, choices, usage: this.usage };
    if (head.system_fingerprint !== undefined) answer.system_fingerprint = head.system_fingerprint;
    return answer;
  }
}
