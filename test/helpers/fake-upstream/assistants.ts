// Assistants API (beta, requires `OpenAI-Beta: assistants=v2`): assistants, threads, messages, runs.
import { CREATED, type Ctx, type Json, fakeText, readJson, readJsonWith, sendError, sendJson, shortHash } from './common.js';

const BETA_MESSAGE =
  "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by setting the header 'OpenAI-Beta: assistants=v2'.";

/** Answers 400 invalid_beta and returns false when the beta header is missing. */
export function checkBeta(ctx: Ctx): boolean {
  const raw = ctx.req.headers['openai-beta'];
  const value = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
  if (value.includes('assistants=v2')) return true;
  sendError(ctx, 400, BETA_MESSAGE, { code: 'invalid_beta' });
  return false;
}

function list(data: Json[]) {
  return {
    object: 'list',
    data,
    first_id: (data[0]?.id as string | undefined) ?? null,
    last_id: (data[data.length - 1]?.id as string | undefined) ?? null,
    has_more: false,
  };
}

function missing(ctx: Ctx, what: string, id: string): void {
  sendError(ctx, 404, `No ${what} found with id '${id}'.`);
}

// ---------------------------------------------------------------- assistants

export function createAssistant(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'model');
  if (!body) return;
  const a: Json = {
    id: `asst_${ctx.hash}`,
    object: 'assistant',
    created_at: CREATED,
    name: body.name ?? null,
    description: body.description ?? null,
    model: body.model,
    instructions: body.instructions ?? null,
    tools: body.tools ?? [],
    tool_resources: body.tool_resources ?? {},
    metadata: body.metadata ?? {},
    top_p: body.top_p ?? 1,
    temperature: body.temperature ?? 1,
    response_format: body.response_format ?? 'auto',
  };
  ctx.state.assistants.set(a.id as string, a);
  sendJson(ctx, 200, a);
}

export function listAssistants(ctx: Ctx): void {
  sendJson(ctx, 200, list([...ctx.state.assistants.values()]));
}

export function getAssistant(ctx: Ctx): void {
  const a = ctx.state.assistants.get(ctx.params.id!);
  if (!a) return missing(ctx, 'assistant', ctx.params.id!);
  sendJson(ctx, 200, a);
}

export function updateAssistant(ctx: Ctx): void {
  const a = ctx.state.assistants.get(ctx.params.id!);
  if (!a) return missing(ctx, 'assistant', ctx.params.id!);
  const body = readJson(ctx);
  if (!body) return;
  Object.assign(a, body, { id: a.id, object: a.object, created_at: a.created_at });
  sendJson(ctx, 200, a);
}

export function deleteAssistant(ctx: Ctx): void {
  const id = ctx.params.id!;
  if (!ctx.state.assistants.delete(id)) return missing(ctx, 'assistant', id);
  sendJson(ctx, 200, { id, object: 'assistant.deleted', deleted: true });
}

// ---------------------------------------------------------------- threads, messages, runs

function textMessage(threadId: string, id: string, role: string, text: string, runId: string | null = null) {
  return {
    id,
    object: 'thread.message',
    created_at: CREATED,
    assistant_id: null,
    thread_id: threadId,
    run_id: runId,
    role,
    content: [{ type: 'text', text: { value: text, annotations: [] } }],
    attachments: [],
    metadata: {},
    status: 'completed',
    incomplete_details: null,
    completed_at: CREATED,
    incomplete_at: null,
  };
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p === 'object' && typeof p.text === 'string' ? p.text : '')).join('');
  }
  return '';
}

export function createThread(ctx: Ctx): void {
  const body = readJson(ctx);
  if (!body) return;
  const id = `thread_${ctx.hash}`;
  const thread: Json = {
    id,
    object: 'thread',
    created_at: CREATED,
    metadata: body.metadata ?? {},
    tool_resources: body.tool_resources ?? {},
  };
  const initial = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const messages = initial.map((m, i) =>
    textMessage(id, `msg_${shortHash(id, String(i))}`, String(m.role ?? 'user'), contentText(m.content)),
  );
  ctx.state.threads.set(id, { thread, messages, runs: new Map() });
  sendJson(ctx, 200, thread);
}

function threadOr404(ctx: Ctx) {
  const t = ctx.state.threads.get(ctx.params.id!);
  if (!t) missing(ctx, 'thread', ctx.params.id!);
  return t;
}

export function getThread(ctx: Ctx): void {
  const t = threadOr404(ctx);
  if (t) sendJson(ctx, 200, t.thread);
}

export function updateThread(ctx: Ctx): void {
  const t = threadOr404(ctx);
  if (!t) return;
  const body = readJson(ctx);
  if (!body) return;
  if (body.metadata !== undefined) t.thread.metadata = body.metadata;
  if (body.tool_resources !== undefined) t.thread.tool_resources = body.tool_resources;
  sendJson(ctx, 200, t.thread);
}

export function deleteThread(ctx: Ctx): void {
  const id = ctx.params.id!;
  if (!ctx.state.threads.delete(id)) return missing(ctx, 'thread', id);
  sendJson(ctx, 200, { id, object: 'thread.deleted', deleted: true });
}

export function createMessage(ctx: Ctx): void {
  const t = threadOr404(ctx);
  if (!t) return;
  const body = readJsonWith(ctx, 'role', 'content');
  if (!body) return;
  const id = `msg_${ctx.hash}`;
  const m = textMessage(t.thread.id as string, id, String(body.role), contentText(body.content));
  if (body.metadata && typeof body.metadata === 'object') m.metadata = body.metadata as Json;
  t.messages.push(m);
  sendJson(ctx, 200, m);
}

export function listMessages(ctx: Ctx): void {
  const t = threadOr404(ctx);
  if (t) sendJson(ctx, 200, list([...t.messages].reverse()));
}

export function createRun(ctx: Ctx): void {
  const t = threadOr404(ctx);
  if (!t) return;
  const body = readJsonWith(ctx, 'assistant_id');
  if (!body) return;
  const threadId = t.thread.id as string;
  const assistant = ctx.state.assistants.get(String(body.assistant_id));
  const id = `run_${ctx.hash}`;
  const completion = ctx.knobs.chunks;
  const prompt = Math.max(1, t.messages.length * 4);
  const run: Json = {
    id,
    object: 'thread.run',
    created_at: CREATED,
    assistant_id: body.assistant_id,
    thread_id: threadId,
    status: 'completed',
    started_at: CREATED,
    expires_at: null,
    cancelled_at: null,
    failed_at: null,
    completed_at: CREATED + 1,
    required_action: null,
    last_error: null,
    model: body.model ?? assistant?.model ?? 'gpt-4.1-nano',
    instructions: body.instructions ?? assistant?.instructions ?? null,
    tools: body.tools ?? assistant?.tools ?? [],
    metadata: body.metadata ?? {},
    incomplete_details: null,
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
    temperature: 1,
    top_p: 1,
    max_prompt_tokens: null,
    max_completion_tokens: null,
    truncation_strategy: { type: 'auto', last_messages: null },
    response_format: 'auto',
    tool_choice: 'auto',
    parallel_tool_calls: true,
  };
  t.runs.set(id, run);
  t.messages.push(textMessage(threadId, `msg_${shortHash(id)}`, 'assistant', fakeText(completion), id));
  sendJson(ctx, 200, run);
}

export function getRun(ctx: Ctx): void {
  const t = threadOr404(ctx);
  if (!t) return;
  const run = t.runs.get(ctx.params.run_id!);
  if (!run) return missing(ctx, 'run', ctx.params.run_id!);
  sendJson(ctx, 200, run);
}
