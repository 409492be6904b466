import type { HTTPMethods } from 'fastify';
import type { UsageShape } from '../usage/shape.js';
import type { UnitKind } from '../usage/units.js';

/**
 * Every `/v1` route tollgate knows, one entry per method and path, each served or refused on
 * purpose. The list mirrors OpenAI's public API (src/proxy/openai-paths.json, extracted from the
 * OpenAPI spec; test/unit/endpoint-drift.test.ts keeps the two in step). A request that does not
 * match an entry exactly (trailing slash, dot segments, encoded characters, other methods) is
 * answered 404 `Invalid URL`; nothing is forwarded "unchecked".
 *
 * The `url` template doubles as the bounded `endpoint` label of logs and metrics.
 */

/** How a JSON body reaches the model: which field holds the prompt, which caps the output. */
export interface ModelCall {
  /** Field whose text is the prompt (the context-length error names it as `param`). */
  readonly promptParam: 'messages' | 'input' | 'prompt';
  /** Output cap fields, in order of precedence. */
  readonly outputCapParams: readonly string[];
}

/**
 * What the request body may be. A body of another media type is refused (400, as OpenAI answers
 * "Unsupported content type"), so no policy check can be skipped by changing the Content-Type.
 * - `none`: no body (GET, DELETE, and POSTs such as `…/cancel`; an empty JSON object is accepted);
 * - `json`: `application/json` (charset utf-8 or none);
 * - `multipart`: `multipart/form-data`;
 * - `json_or_multipart`: either of the two;
 * - `sdp_or_multipart`: `application/sdp` or `multipart/form-data` (WebRTC calls).
 */
export type BodyKind = 'none' | 'json' | 'multipart' | 'json_or_multipart' | 'sdp_or_multipart';

/**
 * Where a request names its model, when it does.
 * - `required`: refused without one (400, OpenAI's "you must provide a model parameter");
 * - a model name: the upstream's default when the request names none (admitted as that model);
 * - `implied`: the upstream takes it from another object (a stored prompt, an assistant): admitted
 *   under the bucket `none` for keys without an allow-list or budget; refused for keys with one
 *   (the policy cannot be applied to a model tollgate does not know).
 */
export type ModelRule = 'required' | 'implied' | { readonly default: string };

export interface ModelField {
  /** Path of the field in the JSON body (or the form field's name), e.g. ['model'], ['session', 'model']. */
  readonly path: readonly string[];
  readonly rule: ModelRule;
}

export type Access =
  /** Forwarded after admission. */
  | 'served'
  /** Answered by tollgate itself after admission, never forwarded (realtime's ephemeral secrets). */
  | 'tollgate'
  /** Refused with 403: tollgate cannot apply a key's policy to what it would start (OpenAI's own ephemeral secrets, WebRTC calls). */
  | 'not_served'
  /** The organisation's admin API: refused with 403, never forwarded (the gateway's credential is a project key). */
  | 'admin_only';

export interface Endpoint {
  readonly method: HTTPMethods;
  readonly url: string;
  readonly body: BodyKind;
  readonly access: Access;
  /** The request names a model: type-checked, resolved in the catalogue, checked against the key's allow-list. */
  readonly model?: ModelField;
  /** The model's use is billed: tokens are reserved against TPM and cost against budgets. */
  readonly metered?: boolean;
  /** Priced by another unit than tokens (src/usage/units.ts): quoted from the request, settled from the answer. */
  readonly units?: UnitKind;
  readonly modelCall?: ModelCall;
  readonly usage?: UsageShape;
  /** A stateless model call: routed over the upstream pool (other calls stay on the default upstream, where their objects live). */
  readonly pooled?: boolean;
  /** The batch queue watches calls here (batch file uploads, batch creation and status). */
  readonly batchQueue?: boolean;
  /** `GET /v1/models`: the answer's list is filtered to the key's allow-list. */
  readonly listsModels?: boolean;
  /** `/v1/models/{model}`: the path names the model; refused (404) outside the key's allow-list. */
  readonly modelInPath?: boolean;
}

const CHAT: ModelCall = { promptParam: 'messages', outputCapParams: ['max_completion_tokens', 'max_tokens'] };
const RESPONSES: ModelCall = { promptParam: 'input', outputCapParams: ['max_output_tokens'] };
const COMPLETIONS: ModelCall = { promptParam: 'prompt', outputCapParams: ['max_tokens'] };

const REQUIRED: ModelField = { path: ['model'], rule: 'required' };
const IMPLIED: ModelField = { path: ['model'], rule: 'implied' };
const defaultModel = (name: string): ModelField => ({ path: ['model'], rule: { default: name } });

type Extra = Omit<Endpoint, 'method' | 'url' | 'body' | 'access'>;

const route = (method: HTTPMethods, path: string, body: BodyKind, extra: Extra = {}): Endpoint => ({
  method,
  url: `/v1${path}`,
  body,
  access: 'served',
  ...extra,
});
const get = (path: string, extra?: Extra): Endpoint => route('GET', path, 'none', extra);
const del = (path: string): Endpoint => route('DELETE', path, 'none');
const post = (path: string, body: BodyKind = 'json', extra?: Extra): Endpoint => route('POST', path, body, extra);
/** The organisation's admin API: every method under the prefix is refused. */
const adminOnly = (path: string): Endpoint[] =>
  (['GET', 'POST', 'DELETE'] as const).map((method) => ({ method, url: `/v1${path}`, body: 'none', access: 'admin_only' }));

const tollgate = (path: string): Endpoint => ({ method: 'POST', url: `/v1${path}`, body: 'json', access: 'tollgate' });
const notServed = (...paths: string[]): Endpoint[] => paths.map((path) => ({ method: 'POST', url: `/v1${path}`, body: 'none', access: 'not_served' }));

/** Create, list, retrieve, modify, delete of one resource collection without a model. */
const crud = (collection: string, id: string): Endpoint[] => [
  get(collection),
  post(collection),
  get(`${collection}/:${id}`),
  post(`${collection}/:${id}`),
  del(`${collection}/:${id}`),
];

export const ENDPOINTS: readonly Endpoint[] = [
  // Text and multimodal generation: billed per token.
  post('/chat/completions', 'json', { model: REQUIRED, metered: true, pooled: true, modelCall: CHAT, usage: 'chat' }),
  get('/chat/completions'),
  get('/chat/completions/:completion_id'),
  post('/chat/completions/:completion_id'),
  del('/chat/completions/:completion_id'),
  get('/chat/completions/:completion_id/messages'),
  post('/responses', 'json', { model: IMPLIED, metered: true, pooled: true, modelCall: RESPONSES, usage: 'responses' }),
  post('/responses/compact', 'json', { model: REQUIRED, metered: true }),
  post('/responses/input_tokens', 'json', { model: IMPLIED, pooled: true }),
  get('/responses/:response_id'),
  del('/responses/:response_id'),
  post('/responses/:response_id/cancel', 'none'),
  get('/responses/:response_id/input_items'),
  post('/completions', 'json', { model: REQUIRED, metered: true, pooled: true, modelCall: COMPLETIONS, usage: 'completions' }),
  post('/embeddings', 'json', { model: REQUIRED, metered: true, pooled: true, usage: 'embeddings' }),
  post('/moderations', 'json', { model: defaultModel('omni-moderation-latest'), metered: true, pooled: true }),

  // Images, audio, video: billed per image, character, minute or second (units).
  post('/images/generations', 'json', { model: defaultModel('dall-e-2'), metered: true, units: 'images', pooled: true }),
  post('/images/edits', 'multipart', { model: defaultModel('dall-e-2'), metered: true, units: 'images' }),
  post('/images/variations', 'multipart', { model: defaultModel('dall-e-2'), metered: true, units: 'images' }),
  post('/audio/speech', 'json', { model: REQUIRED, metered: true, units: 'speech', pooled: true }),
  post('/audio/transcriptions', 'multipart', { model: REQUIRED, metered: true, units: 'transcription' }),
  post('/audio/translations', 'multipart', { model: REQUIRED, metered: true, units: 'transcription' }),
  post('/audio/voices', 'multipart'),
  get('/audio/voice_consents'),
  post('/audio/voice_consents', 'multipart'),
  get('/audio/voice_consents/:consent_id'),
  post('/audio/voice_consents/:consent_id'),
  del('/audio/voice_consents/:consent_id'),
  post('/videos', 'multipart', { model: defaultModel('sora-2'), metered: true, units: 'video' }),
  get('/videos'),
  get('/videos/:video_id'),
  del('/videos/:video_id'),
  get('/videos/:video_id/content'),
  post('/videos/:video_id/remix', 'json_or_multipart', { model: IMPLIED, metered: true, units: 'video' }),
  post('/videos/edits', 'multipart', { model: IMPLIED, metered: true, units: 'video' }),
  post('/videos/extensions', 'multipart', { model: IMPLIED, metered: true, units: 'video' }),
  post('/videos/characters', 'multipart'),
  get('/videos/characters/:character_id'),
  post('/content_provenance_checks', 'multipart'),

  // Files, uploads, batches.
  get('/files'),
  post('/files', 'multipart', { batchQueue: true }),
  get('/files/:file_id'),
  del('/files/:file_id'),
  get('/files/:file_id/content'),
  post('/uploads'),
  post('/uploads/:upload_id/parts', 'multipart'),
  post('/uploads/:upload_id/complete'),
  post('/uploads/:upload_id/cancel', 'none'),
  get('/batches', { batchQueue: true }),
  post('/batches', 'json', { batchQueue: true }),
  get('/batches/:batch_id', { batchQueue: true }),
  post('/batches/:batch_id/cancel', 'none', { batchQueue: true }),

  // Fine-tuning (the job names the model it trains).
  post('/fine_tuning/jobs', 'json', { model: REQUIRED }),
  get('/fine_tuning/jobs'),
  get('/fine_tuning/jobs/:fine_tuning_job_id'),
  post('/fine_tuning/jobs/:fine_tuning_job_id/cancel', 'none'),
  post('/fine_tuning/jobs/:fine_tuning_job_id/pause', 'none'),
  post('/fine_tuning/jobs/:fine_tuning_job_id/resume', 'none'),
  get('/fine_tuning/jobs/:fine_tuning_job_id/checkpoints'),
  get('/fine_tuning/jobs/:fine_tuning_job_id/events'),
  post('/fine_tuning/alpha/graders/run', 'json', { model: { path: ['grader', 'model'], rule: 'implied' }, metered: true }),
  post('/fine_tuning/alpha/graders/validate'),
  ...adminOnly('/fine_tuning/checkpoints/:fine_tuned_model_checkpoint/permissions'),
  ...adminOnly('/fine_tuning/checkpoints/:fine_tuned_model_checkpoint/permissions/:permission_id'),

  // Evals: a run names the model it samples (data_source.model).
  ...crud('/evals', 'eval_id'),
  get('/evals/:eval_id/runs'),
  post('/evals/:eval_id/runs', 'json', { model: { path: ['data_source', 'model'], rule: 'implied' }, metered: true }),
  get('/evals/:eval_id/runs/:run_id'),
  post('/evals/:eval_id/runs/:run_id', 'none'),
  del('/evals/:eval_id/runs/:run_id'),
  get('/evals/:eval_id/runs/:run_id/output_items'),
  get('/evals/:eval_id/runs/:run_id/output_items/:output_item_id'),

  // Assistants and threads: an assistant names its model; a run may override it.
  get('/assistants'),
  post('/assistants', 'json', { model: REQUIRED }),
  get('/assistants/:assistant_id'),
  post('/assistants/:assistant_id', 'json', { model: { path: ['model'], rule: 'implied' } }),
  del('/assistants/:assistant_id'),
  post('/threads'),
  post('/threads/runs', 'json', { model: IMPLIED, metered: true }),
  get('/threads/:thread_id'),
  post('/threads/:thread_id'),
  del('/threads/:thread_id'),
  get('/threads/:thread_id/messages'),
  post('/threads/:thread_id/messages'),
  get('/threads/:thread_id/messages/:message_id'),
  post('/threads/:thread_id/messages/:message_id'),
  del('/threads/:thread_id/messages/:message_id'),
  get('/threads/:thread_id/runs'),
  post('/threads/:thread_id/runs', 'json', { model: IMPLIED, metered: true }),
  get('/threads/:thread_id/runs/:run_id'),
  post('/threads/:thread_id/runs/:run_id'),
  post('/threads/:thread_id/runs/:run_id/cancel', 'none'),
  get('/threads/:thread_id/runs/:run_id/steps'),
  get('/threads/:thread_id/runs/:run_id/steps/:step_id'),
  post('/threads/:thread_id/runs/:run_id/submit_tool_outputs'),

  // Vector stores, conversations, containers, skills, chatkit: resources without a model.
  ...crud('/vector_stores', 'vector_store_id'),
  post('/vector_stores/:vector_store_id/search'),
  post('/vector_stores/:vector_store_id/file_batches'),
  get('/vector_stores/:vector_store_id/file_batches/:batch_id'),
  post('/vector_stores/:vector_store_id/file_batches/:batch_id/cancel', 'none'),
  get('/vector_stores/:vector_store_id/file_batches/:batch_id/files'),
  get('/vector_stores/:vector_store_id/files'),
  post('/vector_stores/:vector_store_id/files'),
  get('/vector_stores/:vector_store_id/files/:file_id'),
  post('/vector_stores/:vector_store_id/files/:file_id'),
  del('/vector_stores/:vector_store_id/files/:file_id'),
  get('/vector_stores/:vector_store_id/files/:file_id/content'),
  post('/conversations'),
  get('/conversations/:conversation_id'),
  post('/conversations/:conversation_id'),
  del('/conversations/:conversation_id'),
  get('/conversations/:conversation_id/items'),
  post('/conversations/:conversation_id/items'),
  get('/conversations/:conversation_id/items/:item_id'),
  del('/conversations/:conversation_id/items/:item_id'),
  get('/containers'),
  post('/containers', 'json', { metered: true, units: 'containers' }),
  get('/containers/:container_id'),
  del('/containers/:container_id'),
  get('/containers/:container_id/files'),
  post('/containers/:container_id/files', 'json_or_multipart'),
  get('/containers/:container_id/files/:file_id'),
  del('/containers/:container_id/files/:file_id'),
  get('/containers/:container_id/files/:file_id/content'),
  get('/skills'),
  post('/skills', 'json_or_multipart'),
  get('/skills/:skill_id'),
  post('/skills/:skill_id'),
  del('/skills/:skill_id'),
  get('/skills/:skill_id/content'),
  get('/skills/:skill_id/versions'),
  post('/skills/:skill_id/versions', 'json_or_multipart'),
  get('/skills/:skill_id/versions/:version'),
  del('/skills/:skill_id/versions/:version'),
  get('/skills/:skill_id/versions/:version/content'),
  post('/chatkit/sessions'),
  post('/chatkit/sessions/:session_id/cancel', 'none'),
  get('/chatkit/threads'),
  get('/chatkit/threads/:thread_id'),
  del('/chatkit/threads/:thread_id'),
  get('/chatkit/threads/:thread_id/items'),

  // Realtime over HTTP. Ephemeral secrets are tollgate's own (src/realtime/): OpenAI's would let a
  // browser bypass every limit. What would mint OpenAI's, or start a session tollgate cannot meter
  // (WebRTC calls, accepting a SIP call: its audio and tokens never pass the gateway), is not
  // served. Ending, declining or transferring a call starts no model work: served as management.
  tollgate('/realtime/sessions'),
  tollgate('/realtime/client_secrets'),
  ...notServed('/realtime/transcription_sessions', '/realtime/translations/client_secrets', '/realtime/calls'),
  ...notServed('/realtime/calls/:call_id/accept'),
  post('/realtime/calls/:call_id/hangup', 'none'),
  post('/realtime/calls/:call_id/refer'),
  post('/realtime/calls/:call_id/reject'),

  // Models: listed and retrieved within the key's allow-list.
  get('/models', { listsModels: true }),
  get('/models/:model', { modelInPath: true }),
  route('DELETE', '/models/:model', 'none', { modelInPath: true }),

  // The organisation's admin API (admin keys, users, projects, usage, audit logs).
  ...adminOnly('/organization/*'),
  ...adminOnly('/projects/*'),
];

/** Template → entries, for the drift test and the docs. */
export function endpointKey(endpoint: Pick<Endpoint, 'method' | 'url'>): string {
  return `${endpoint.method} ${endpoint.url}`;
}
