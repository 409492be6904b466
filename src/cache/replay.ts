import type { UsageShape } from '../usage/shape.js';

/**
 * A stored JSON answer replayed as the stream the endpoint would have sent: whole texts in one
 * delta each (a hit is instant, so splitting it would only cost), the framing and event sequence
 * of the real thing, and for chat / legacy completions the usage chunk only when the client asked
 * for it (`stream_options.include_usage`), as OpenAI does.
 */

type Json = Record<string, unknown>;

export function replayStream(shape: UsageShape, answer: Json, includeUsage: boolean): Buffer | undefined {
  if (shape === 'chat') return Buffer.from(chatStream(answer, includeUsage));
  if (shape === 'responses') return Buffer.from(responsesStream(answer));
  if (shape === 'completions') return Buffer.from(completionsStream(answer, includeUsage));
  return undefined;
}

const data = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`;
const DONE = 'data: [DONE]\n\n';

function chatStream(answer: Json, includeUsage: boolean): string {
  const head: Json = { id: answer.id, object: 'chat.completion.chunk', created: answer.created, model: answer.model };
  if (answer.service_tier !== undefined) head.service_tier = answer.service_tier;
  if (answer.system_fingerprint !== undefined) head.system_fingerprint = answer.system_fingerprint;
  const chunk = (choice: Json): Json => (includeUsage ? { ...head, choices: [choice], usage: null } : { ...head, choices: [choice] });
  let out = '';
  for (const choice of (answer.choices ?? []) as Json[]) {
    const index = choice.index ?? 0;
    const message = (choice.message ?? {}) as Json;
    out += data(chunk({ index, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }));
    if (typeof message.content === 'string' && message.content.length > 0) {
      out += data(chunk({ index, delta: { content: message.content }, logprobs: choice.logprobs ?? null, finish_reason: null }));
    }
    if (typeof message.refusal === 'string') out += data(chunk({ index, delta: { refusal: message.refusal }, logprobs: null, finish_reason: null }));
    if (Array.isArray(message.tool_calls)) {
      const calls = (message.tool_calls as Json[]).map((call, i) => ({ index: i, ...call }));
      out += data(chunk({ index, delta: { tool_calls: calls }, logprobs: null, finish_reason: null }));
    }
    out += data(chunk({ index, delta: {}, logprobs: null, finish_reason: choice.finish_reason ?? 'stop' }));
  }
  if (includeUsage) out += data({ ...head, choices: [], usage: answer.usage });
  return out + DONE;
}

function completionsStream(answer: Json, includeUsage: boolean): string {
  const head: Json = { id: answer.id, object: 'text_completion', created: answer.created, model: answer.model };
  const tail: Json = answer.system_fingerprint !== undefined ? { system_fingerprint: answer.system_fingerprint } : {};
  const chunk = (choice: Json): Json => ({ ...head, choices: [choice], ...tail, ...(includeUsage ? { usage: null } : {}) });
  let out = '';
  for (const choice of (answer.choices ?? []) as Json[]) {
    const index = choice.index ?? 0;
    out += data(chunk({ text: choice.text ?? '', index, logprobs: null, finish_reason: null }));
    out += data(chunk({ text: '', index, logprobs: null, finish_reason: choice.finish_reason ?? 'stop' }));
  }
  if (includeUsage) out += data({ ...head, choices: [], usage: answer.usage, ...tail });
  return out + DONE;
}

/** The Responses event sequence: created, in_progress, each output item with its parts, completed. */
function responsesStream(response: Json): string {
  let sequence = 0;
  let out = '';
  const emit = (type: string, fields: Json): void => {
    out += `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`;
  };
  const pending = { ...response, status: 'in_progress', output: [], usage: null };
  emit('response.created', { response: pending });
  emit('response.in_progress', { response: pending });
  const output = Array.isArray(response.output) ? (response.output as Json[]) : [];
  output.forEach((item, outputIndex) => {
    const itemId = item.id;
    if (item.type === 'message') {
      emit('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', content: [] } });
      const parts = Array.isArray(item.content) ? (item.content as Json[]) : [];
      parts.forEach((part, contentIndex) => {
        const at = { item_id: itemId, output_index: outputIndex, content_index: contentIndex };
        if (part.type === 'output_text') {
          emit('response.content_part.added', { ...at, part: { ...part, text: '', annotations: [] } });
          emit('response.output_text.delta', { ...at, delta: part.text ?? '', logprobs: [] });
          emit('response.output_text.done', { ...at, text: part.text ?? '', logprobs: [] });
        } else if (part.type === 'refusal') {
          emit('response.content_part.added', { ...at, part: { ...part, refusal: '' } });
          emit('response.refusal.delta', { ...at, delta: part.refusal ?? '' });
          emit('response.refusal.done', { ...at, refusal: part.refusal ?? '' });
        } else {
          emit('response.content_part.added', { ...at, part });
        }
        emit('response.content_part.done', { ...at, part });
      });
    } else if (item.type === 'function_call') {
      emit('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', arguments: '' } });
      const at = { item_id: itemId, output_index: outputIndex };
      emit('response.function_call_arguments.delta', { ...at, delta: item.arguments ?? '' });
      emit('response.function_call_arguments.done', { ...at, arguments: item.arguments ?? '' });
    } else {
      emit('response.output_item.added', { output_index: outputIndex, item });
    }
    emit('response.output_item.done', { output_index: outputIndex, item });
  });
  emit('response.completed', { response });
  return out;
}
