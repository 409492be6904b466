// Embeddings, moderations, images, audio, realtime call control and models.
import { createHash } from 'node:crypto';
import {
  CREATED,
  type Ctx,
  formString,
  readForm,
  readJson,
  readJsonWith,
  sendBody,
  sendError,
  sendJson,
  SseWriter,
  tokenCounts,
} from './common.js';

// ---------------------------------------------------------------- embeddings

/** The 8 deterministic floats of the fake embedding of `input` (multiples of 1/128, exact in float32). */
export function fakeEmbedding(input: string): number[] {
  const digest = createHash('sha256').update(input).digest();
  return Array.from({ length: 8 }, (_, i) => (digest[i]! - 128) / 128);
}

function embeddingInputs(input: unknown): string[] {
  if (typeof input === 'string') return [input];
  if (Array.isArray(input)) {
    // an array of token ids is one input; an array of strings / token arrays is many
    if (input.every((x) => typeof x === 'number')) return [JSON.stringify(input)];
    return input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  }
  return [JSON.stringify(input)];
}

export function embeddings(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'model', 'input');
  if (!body) return;
  const base64 = body.encoding_format === 'base64';
  const data = embeddingInputs(body.input).map((text, index) => {
    const floats = fakeEmbedding(text);
    const embedding = base64 ? Buffer.from(new Float32Array(floats).buffer).toString('base64') : floats;
    return { object: 'embedding', index, embedding };
  });
  const { prompt } = tokenCounts(ctx, body);
  sendJson(ctx, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: prompt, total_tokens: prompt } });
}

// ---------------------------------------------------------------- moderations

const MOD_CATEGORIES = ['harassment', 'hate', 'self-harm', 'sexual', 'violence'] as const;

export function moderations(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'input');
  if (!body) return;
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const result = {
    flagged: false,
    categories: Object.fromEntries(MOD_CATEGORIES.map((c) => [c, false])),
    category_scores: Object.fromEntries(MOD_CATEGORIES.map((c, i) => [c, (i + 1) / 10000])),
    category_applied_input_types: {},
  };
  sendJson(ctx, 200, {
    id: `modr-${ctx.hash}`,
    model: body.model ?? 'omni-moderation-latest',
    results: inputs.map(() => result),
  });
}

// ---------------------------------------------------------------- images

/** A 1x1 transparent PNG. */
export const FAKE_PNG_B64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

/**
 * Images: `n` images; usage as gpt-image-1 reports it: text input = ceil(prompt / 4) tokens (+ 100
 * image input tokens per input image of an edit), 272 output tokens per image.
 */
function imagesAnswer(ctx: Ctx, prompt: string, n: number, responseFormat: unknown, inputImages = 0): void {
  const count = Math.max(1, Math.min(10, n));
  const tokens = Math.max(1, Math.ceil(prompt.length / 4));
  const imageTokens = 100 * inputImages;
  const image = (i: number) =>
    responseFormat === 'url'
      ? { url: `https://fake-upstream.invalid/images/${ctx.hash}-${i}.png`, revised_prompt: prompt }
      : { b64_json: FAKE_PNG_B64, revised_prompt: prompt };
  sendJson(ctx, 200, {
    created: CREATED,
    data: Array.from({ length: count }, (_, i) => image(i)),
    usage: {
      total_tokens: tokens + imageTokens + 272 * count,
      input_tokens: tokens + imageTokens,
      output_tokens: 272 * count,
      input_tokens_details: { text_tokens: tokens, image_tokens: imageTokens },
    },
  });
}

export function imageGenerations(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'prompt');
  if (!body) return;
  imagesAnswer(ctx, String(body.prompt), typeof body.n === 'number' ? body.n : 1, body.response_format);
}

export async function imageEdits(ctx: Ctx): Promise<void> {
  const form = await readForm(ctx);
  if (!form) return;
  const prompt = formString(form, 'prompt');
  if (prompt === undefined) return sendError(ctx, 400, "Missing required parameter: 'prompt'.", { param: 'prompt' });
  if (!form.has('image') && !form.has('image[]'))
    return sendError(ctx, 400, "Missing required parameter: 'image'.", { param: 'image' });
  const images = [...form.keys()].filter((name) => name === 'image' || name === 'image[]').length;
  imagesAnswer(ctx, prompt, Number(formString(form, 'n') ?? 1) || 1, formString(form, 'response_format'), images);
}

// ---------------------------------------------------------------- audio

/** The bytes /audio/speech answers for `input`: 4096 bytes, an "ID3" header then sha256(input) repeated. */
export function fakeSpeechBytes(input: string): Buffer {
  const out = Buffer.alloc(4096);
  const digest = createHash('sha256').update(input).digest();
  for (let i = 0; i < out.length; i++) out[i] = digest[i % digest.length]!;
  out.write('ID3\x04\x00\x00', 0, 'latin1');
  return out;
}

/**
 * Speech: the fake bytes; with `stream_format: "sse"`, one `speech.audio.delta` per 1,024 bytes
 * then `speech.audio.done` with usage: ceil(input / 4) text tokens, one audio token per input character.
 */
export async function speech(ctx: Ctx): Promise<void> {
  const body = readJsonWith(ctx, 'model', 'input', 'voice');
  if (!body) return;
  const input = String(body.input);
  const audio = fakeSpeechBytes(input);
  if (body.stream_format !== 'sse') return sendBody(ctx, 200, audio, 'audio/mpeg');
  const sse = new SseWriter(ctx);
  if (!(await sse.start())) return;
  for (let at = 0; at < audio.length; at += 1024) {
    if (!(await sse.data({ type: 'speech.audio.delta', audio: audio.subarray(at, at + 1024).toString('base64') }))) return;
  }
  const inputTokens = Math.ceil(input.length / 4);
  await sse.data({ type: 'speech.audio.done', usage: { input_tokens: inputTokens, output_tokens: input.length, total_tokens: inputTokens + input.length } });
  sse.end();
}

export async function transcribe(ctx: Ctx, kind: 'transcriptions' | 'translations'): Promise<void> {
  const form = await readForm(ctx);
  if (!form) return;
  const file = form.get('file');
  if (file === null || typeof file === 'string')
    return sendError(ctx, 400, "Missing required parameter: 'file'.", { param: 'file' });
  if (formString(form, 'model') === undefined)
    return sendError(ctx, 400, "Missing required parameter: 'model'.", { param: 'model' });
  const text = `fake transcript of ${file.size} bytes`;
  const format = formString(form, 'response_format') ?? 'json';
  if (format === 'text' || format === 'srt' || format === 'vtt') {
    return sendBody(ctx, 200, Buffer.from(`${text}\n`), 'text/plain; charset=utf-8');
  }
  // whisper-1 is billed by duration: the fake's audio lasts one second per 16,000 bytes (128 kbps).
  const model = formString(form, 'model');
  const duration = file.size / 16_000;
  if (format === 'verbose_json') {
    return sendJson(ctx, 200, { task: kind === 'translations' ? 'translate' : 'transcribe', language: 'english', duration, text, segments: [] });
  }
  if (model === 'whisper-1') {
    return sendJson(ctx, 200, kind === 'translations' ? { text } : { text, usage: { type: 'duration', seconds: Math.ceil(duration) } });
  }
  if (kind === 'translations') return sendJson(ctx, 200, { text });
  const input = Math.max(1, Math.ceil(file.size / 1000));
  const output = Math.max(1, Math.ceil(text.length / 4));
  const usage = { type: 'tokens', input_tokens: input, input_token_details: { text_tokens: 0, audio_tokens: input }, output_tokens: output, total_tokens: input + output };
  if (formString(form, 'stream') !== 'true') return sendJson(ctx, 200, { text, usage });
  // A stream: one delta per word, then the whole text with usage.
  const sse = new SseWriter(ctx);
  if (!(await sse.start())) return;
  for (const word of text.split(' ')) if (!(await sse.data({ type: 'transcript.text.delta', delta: `${word} ` }))) return;
  await sse.data({ type: 'transcript.text.done', text, usage });
  sse.end();
}

// ---------------------------------------------------------------- videos

/** A video job, queued: the model, seconds and size the form asked for (sora-2 defaults: 4 seconds, 720x1280). */
export async function createVideo(ctx: Ctx): Promise<void> {
  const form = await readForm(ctx);
  if (!form) return;
  const prompt = formString(form, 'prompt');
  if (prompt === undefined) return sendError(ctx, 400, "Missing required parameter: 'prompt'.", { param: 'prompt' });
  sendJson(ctx, 200, {
    id: `video_${ctx.hash}`,
    object: 'video',
    model: formString(form, 'model') ?? 'sora-2',
    status: 'queued',
    progress: 0,
    created_at: CREATED,
    size: formString(form, 'size') ?? '720x1280',
    seconds: formString(form, 'seconds') ?? '4',
    quality: 'standard',
  });
}

// ---------------------------------------------------------------- containers

/** A code-interpreter container, as created: its name and memory limit (default 1g). */
export function createContainer(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'name');
  if (!body) return;
  sendJson(ctx, 200, {
    id: `cntr_${ctx.hash}`,
    object: 'container',
    created_at: CREATED,
    status: 'running',
    name: body.name,
    memory_limit: body.memory_limit ?? '1g',
    expires_after: { anchor: 'last_active_at', minutes: 20 },
  });
}

// ---------------------------------------------------------------- realtime call control

/** hangup, refer (needs `target_uri`), reject: 200 with an empty body. */
export function callControl(ctx: Ctx): void {
  const body = ctx.pathname.endsWith('/refer') ? readJsonWith(ctx, 'target_uri') : readJson(ctx);
  if (!body) return;
  sendBody(ctx, 200, Buffer.alloc(0), 'application/json');
}

// ---------------------------------------------------------------- models

const MODELS = ['gpt-4.1-nano', 'gpt-4.1-nano-2025-04-14', 'text-embedding-3-small'].map((id) => ({
  id,
  object: 'model',
  created: CREATED,
  owned_by: 'system',
}));

export function listModels(ctx: Ctx): void {
  const extra = ctx.state.models ?? [];
  const ids = new Set(extra.map((m) => m.id));
  sendJson(ctx, 200, { object: 'list', data: [...MODELS.filter((m) => !ids.has(m.id)), ...extra] });
}

export function getModel(ctx: Ctx): void {
  const id = ctx.params.id!;
  const model = MODELS.find((m) => m.id === id);
  if (model) return sendJson(ctx, 200, model);
  sendError(ctx, 404, `The model '${id}' does not exist`, { param: 'model', code: 'model_not_found' });
}
