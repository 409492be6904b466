import type { HTTPMethods } from 'fastify';
import type { UsageShape } from '../usage/shape.js';

/**
 * Every `/v1` endpoint tollgate forwards. The `url` template doubles as the bounded `endpoint`
 * label of logs and metrics. A path outside this list is answered 404 `Invalid URL`.
 */

/** How a JSON body reaches the model: which field holds the prompt, which caps the output. */
export interface ModelCall {
  /** Field whose text is the prompt (the context-length error names it as `param`). */
  readonly promptParam: 'messages' | 'input' | 'prompt';
  /** Output cap fields, in order of precedence. */
  readonly outputCapParams: readonly string[];
}

export interface Endpoint {
  readonly url: string;
  readonly methods: readonly HTTPMethods[];
  /** The JSON body names a `model` that must be in the catalogue (or pass the unknown policy). */
  readonly checksModel?: boolean;
  readonly modelCall?: ModelCall;
  readonly usage?: UsageShape;
  /** Counts toward the key's rate limits (default: when the body names a model). */
  readonly limited?: boolean;
  /** The batch queue watches calls here (batch file uploads, batch creation and status). */
  readonly batchQueue?: boolean;
}

const CHAT: ModelCall = { promptParam: 'messages', outputCapParams: ['max_completion_tokens', 'max_tokens'] };
const RESPONSES: ModelCall = { promptParam: 'input', outputCapParams: ['max_output_tokens'] };
const COMPLETIONS: ModelCall = { promptParam: 'prompt', outputCapParams: ['max_tokens'] };

const GET: HTTPMethods[] = ['GET'];
const POST: HTTPMethods[] = ['POST'];
const ANY: HTTPMethods[] = ['GET', 'POST', 'DELETE'];

export const ENDPOINTS: readonly Endpoint[] = [
  { url: '/v1/chat/completions', methods: POST, checksModel: true, modelCall: CHAT, usage: 'chat' },
  { url: '/v1/chat/completions', methods: GET },
  { url: '/v1/chat/completions/*', methods: ANY },
  { url: '/v1/responses', methods: POST, checksModel: true, modelCall: RESPONSES, usage: 'responses' },
  { url: '/v1/responses/input_tokens', methods: POST, checksModel: true, limited: false },
  { url: '/v1/responses/*', methods: ANY },
  { url: '/v1/completions', methods: POST, checksModel: true, modelCall: COMPLETIONS, usage: 'completions' },
  { url: '/v1/embeddings', methods: POST, checksModel: true, usage: 'embeddings' },
  { url: '/v1/moderations', methods: POST, checksModel: true },
  { url: '/v1/images/generations', methods: POST, checksModel: true },
  { url: '/v1/images/edits', methods: POST },
  { url: '/v1/images/variations', methods: POST },
  { url: '/v1/audio/speech', methods: POST, checksModel: true },
  { url: '/v1/audio/transcriptions', methods: POST },
  { url: '/v1/audio/translations', methods: POST },
  { url: '/v1/files', methods: ['GET', 'POST'], batchQueue: true },
  { url: '/v1/files/*', methods: ANY },
  { url: '/v1/uploads', methods: POST },
  { url: '/v1/uploads/*', methods: POST },
  { url: '/v1/batches', methods: ['GET', 'POST'], batchQueue: true },
  { url: '/v1/batches/*', methods: ['GET', 'POST'], batchQueue: true },
  { url: '/v1/fine_tuning/*', methods: ANY },
  { url: '/v1/assistants', methods: ['GET', 'POST'] },
  { url: '/v1/assistants/*', methods: ANY },
  { url: '/v1/threads', methods: POST },
  { url: '/v1/threads/*', methods: ANY },
  { url: '/v1/vector_stores', methods: ['GET', 'POST'] },
  { url: '/v1/vector_stores/*', methods: ANY },
  { url: '/v1/conversations', methods: POST },
  { url: '/v1/conversations/*', methods: ANY },
  // /v1/realtime/client_secrets and /sessions are tollgate's own (src/realtime/): OpenAI's ephemeral
  // keys would bypass every limit. transcription_sessions mints those too, so it is not forwarded.
  { url: '/v1/models', methods: GET },
  { url: '/v1/models/:model', methods: ['GET', 'DELETE'] },
];
