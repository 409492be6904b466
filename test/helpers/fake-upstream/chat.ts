// POST /v1/chat/completions and the legacy POST /v1/completions.
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

function chatUsage(t: TokenCounts) {
  return {
    prompt_tokens: t.prompt,
    completion_tokens: t.completion,
    total_tokens: t.prompt + t.completion,
    prompt_tokens_details: { cached_tokens: t.cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

function legacyUsage(t: TokenCounts) {
  return { prompt_tokens: t.prompt, completion_tokens: t.completion, total_tokens: t.prompt + t.completion };
}

function includeUsage(body: Json): boolean {
  const so = body.stream_options;
  return so !== null && typeof so === 'object' && (so as Json).include_usage === true;
}

export async function chatCompletions(ctx: Ctx): Promise<void> {
  const body = readJsonWith(ctx, 'model', 'messages');
  if (!body) return;
  const id = `chatcmpl-${ctx.hash}`;
  const model = body.model;
  const tokens = tokenCounts(ctx, body);
  const n = ctx.knobs.chunks;

  if (body.stream !== true) {
    sendJson(ctx, 200, {
      id,
      object: 'chat.completion',
      created: CREATED,
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: fakeText(n), refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: chatUsage(tokens),
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
    });
    return;
  }

  const withUsage = includeUsage(body);
  const chunk = (delta: Json, finish: string | null) => {
    const c: Json = {
      id,
      object: 'chat.completion.chunk',
      created: CREATED,
      model,
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
    if (withUsage) c.usage = null;
    return c;
  };
  const sse = new SseWriter(ctx);
  if (!(await sse.start())) return;
  if (!(await sse.data(chunk({ role: 'assistant', content: '', refusal: null }, null)))) return;
  for (let i = 0; i < n; i++) {
    if (!(await sse.data(chunk({ content: fakeChunk(i) }, null)))) return;
  }
  if (!(await sse.data(chunk({}, 'stop')))) return;
  if (withUsage) {
    const last = {
      id,
      object: 'chat.completion.chunk',
      created: CREATED,
      model,
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
      choices: [],
      usage: chatUsage(tokens),
    };
    if (!(await sse.data(last))) return;
  }
  if (!(await sse.event('data: [DONE]\n\n'))) return;
  sse.end();
}

export async function completions(ctx: Ctx): Promise<void> {
  const body = readJsonWith(ctx, 'model', 'prompt');
  if (!body) return;
  const id = `cmpl-${ctx.hash}`;
  const model = body.model;
  const tokens = tokenCounts(ctx, body);
  const n = ctx.knobs.chunks;

  if (body.stream !== true) {
    sendJson(ctx, 200, {
      id,
      object: 'text_completion',
      created: CREATED,
      model,
      choices: [{ text: fakeText(n), index: 0, logprobs: null, finish_reason: 'stop' }],
      usage: legacyUsage(tokens),
      system_fingerprint: 'fp_fake',
    });
    return;
  }

  const withUsage = includeUsage(body);
  const chunk = (text: string, finish: string | null) => {
    const c: Json = {
      id,
      object: 'text_completion',
      created: CREATED,
      model,
      choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
      system_fingerprint: 'fp_fake',
    };
    if (withUsage) c.usage = null;
    return c;
  };
  const sse = new SseWriter(ctx);
  if (!(await sse.start())) return;
  for (let i = 0; i < n; i++) {
    if (!(await sse.data(chunk(fakeChunk(i), null)))) return;
  }
  if (!(await sse.data(chunk('', 'stop')))) return;
  if (withUsage) {
    const last = {
      id,
      object: 'text_completion',
      created: CREATED,
      model,
      choices: [],
      usage: legacyUsage(tokens),
      system_fingerprint: 'fp_fake',
    };
    if (!(await sse.data(last))) return;
  }
  if (!(await sse.event('data: [DONE]\n\n'))) return;
  sse.end();
}
