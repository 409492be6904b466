// The Responses API: POST /v1/responses (JSON and named-event SSE), GET/DELETE /v1/responses/{id},
// GET /v1/responses/{id}/input_items.
import {
  CREATED,
  type Ctx,
  type Json,
  SseWriter,
  fakeChunk,
  fakeText,
  readJsonWith,
  sendJson,
  tokenCounts,
  type TokenCounts,
} from './common.js';

function responsesUsage(t: TokenCounts) {
  return {
    input_tokens: t.prompt,
    input_tokens_details: { cached_tokens: t.cached },
    output_tokens: t.completion,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: t.prompt + t.completion,
  };
}

/** The built-in tool calls the knobs ask for, as output items. */
function toolCallItems(ctx: Ctx): Json[] {
  const items: Json[] = [];
  for (let i = 0; i < ctx.knobs.webSearchCalls; i++) items.push({ type: 'web_search_call', id: `ws_${ctx.hash}_${i}`, status: 'completed', action: { type: 'search', query: `q${i}` } });
  for (let i = 0; i < ctx.knobs.fileSearchCalls; i++) items.push({ type: 'file_search_call', id: `fs_${ctx.hash}_${i}`, status: 'completed', queries: [`q${i}`], results: null });
  return items;
}

function messageItem(msgId: string, text: string, status: 'in_progress' | 'completed') {
  return {
    type: 'message',
    id: msgId,
    status,
    role: 'assistant',
    content: status === 'completed' ? [outputText(text)] : [],
  };
}

function outputText(text: string) {
  return { type: 'output_text', text, annotations: [], logprobs: [] };
}

interface ResponseInit {
  id: string;
  model: unknown;
  body: Json;
  status: 'in_progress' | 'completed';
  output: unknown[];
  usage: unknown;
}

function responseObject(r: ResponseInit) {
  const b = r.body;
  return {
    id: r.id,
    object: 'response',
    created_at: CREATED,
    status: r.status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: b.instructions ?? null,
    max_output_tokens: b.max_output_tokens ?? null,
    model: r.model,
    output: r.output,
    parallel_tool_calls: b.parallel_tool_calls ?? true,
    previous_response_id: b.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    service_tier: 'default',
    store: b.store ?? true,
    temperature: b.temperature ?? 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: b.top_p ?? 1,
    truncation: 'disabled',
    usage: r.usage,
    user: null,
    metadata: b.metadata ?? {},
  };
}

export async function createResponse(ctx: Ctx): Promise<void> {
  const body = readJsonWith(ctx, 'model');
  if (!body) return;
  const id = `resp_${ctx.hash}`;
  const msgId = `msg_${ctx.hash}`;
  const n = ctx.knobs.chunks;
  const text = fakeText(n);
  const usage = responsesUsage(tokenCounts(ctx, body));
  const final = responseObject({
    id,
    model: body.model,
    body,
    status: 'completed',
    output: [...toolCallItems(ctx), messageItem(msgId, text, 'completed')],
    usage,
  });

  if (body.stream !== true) {
    sendJson(ctx, 200, final);
    return;
  }

  const sse = new SseWriter(ctx);
  let seq = 0;
  const emit = (type: string, fields: Json) => sse.named(type, { type, sequence_number: seq++, ...fields });
  const pending = responseObject({ id, model: body.model, body, status: 'in_progress', output: [], usage: null });
  const loc = { item_id: msgId, output_index: 0, content_index: 0 };

  if (!(await sse.start())) return;
  if (!(await emit('response.created', { response: pending }))) return;
  if (!(await emit('response.in_progress', { response: pending }))) return;
  if (!(await emit('response.output_item.added', { output_index: 0, item: messageItem(msgId, '', 'in_progress') })))
    return;
  if (!(await emit('response.content_part.added', { ...loc, part: outputText('') }))) return;
  for (let i = 0; i < n; i++) {
    if (!(await emit('response.output_text.delta', { ...loc, delta: fakeChunk(i), logprobs: [] }))) return;
  }
  if (!(await emit('response.output_text.done', { ...loc, text, logprobs: [] }))) return;
  if (!(await emit('response.content_part.done', { ...loc, part: outputText(text) }))) return;
  if (!(await emit('response.output_item.done', { output_index: 0, item: messageItem(msgId, text, 'completed') })))
    return;
  if (!(await emit('response.completed', { response: final }))) return;
  sse.end();
}

export function getResponse(ctx: Ctx): void {
  const id = ctx.params.id!;
  const n = ctx.knobs.chunks;
  const prompt = ctx.knobs.promptTokens ?? 1;
  const tokens = { prompt, cached: Math.min(ctx.knobs.cachedTokens, prompt), completion: n };
  sendJson(
    ctx,
    200,
    responseObject({
      id,
      model: 'gpt-4.1-nano',
      body: {},
      status: 'completed',
      output: [messageItem(`msg_${ctx.hash}`, fakeText(n), 'completed')],
      usage: responsesUsage(tokens),
    }),
  );
}

export function deleteResponse(ctx: Ctx): void {
  sendJson(ctx, 200, { id: ctx.params.id, object: 'response.deleted', deleted: true });
}

export function responseInputItems(ctx: Ctx): void {
  sendJson(ctx, 200, {
    object: 'list',
    data: [{ type: 'message', id: 'msg_in', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }],
    first_id: 'msg_in',
    last_id: 'msg_in',
    has_more: false,
  });
}
