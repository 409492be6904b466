// Files, batches and fine-tuning jobs, kept in memory.
import {
  CREATED,
  type Ctx,
  type Json,
  formString,
  readForm,
  readJsonWith,
  sendBody,
  sendError,
  sendJson,
  shortHash,
} from './common.js';

function list(data: Json[]) {
  return {
    object: 'list',
    data,
    first_id: (data[0]?.id as string | undefined) ?? null,
    last_id: (data[data.length - 1]?.id as string | undefined) ?? null,
    has_more: false,
  };
}

function noSuch(ctx: Ctx, what: string, id: string): void {
  sendError(ctx, 404, `No such ${what} object: ${id}`, { param: 'id' });
}

// ---------------------------------------------------------------- files

export async function uploadFile(ctx: Ctx): Promise<void> {
  const form = await readForm(ctx);
  if (!form) return;
  const file = form.get('file');
  if (file === null || typeof file === 'string')
    return sendError(ctx, 400, "Missing required parameter: 'file'.", { param: 'file' });
  const purpose = formString(form, 'purpose');
  if (purpose === undefined) return sendError(ctx, 400, "Missing required parameter: 'purpose'.", { param: 'purpose' });
  const content = Buffer.from(await file.arrayBuffer());
  const id = `file-${shortHash(purpose, '\n', file.name, '\n', content)}`;
  const meta: Json = {
    id,
    object: 'file',
    bytes: content.length,
    created_at: CREATED,
    expires_at: null,
    filename: file.name,
    purpose,
    status: 'processed',
    status_details: null,
  };
  ctx.state.files.set(id, { meta, content });
  sendJson(ctx, 200, meta);
}

export function listFiles(ctx: Ctx): void {
  sendJson(ctx, 200, list([...ctx.state.files.values()].map((f) => f.meta)));
}

export function getFile(ctx: Ctx): void {
  const f = ctx.state.files.get(ctx.params.id!);
  if (!f) return noSuch(ctx, 'File', ctx.params.id!);
  sendJson(ctx, 200, f.meta);
}

export function deleteFile(ctx: Ctx): void {
  const id = ctx.params.id!;
  if (!ctx.state.files.delete(id)) return noSuch(ctx, 'File', id);
  sendJson(ctx, 200, { id, object: 'file', deleted: true });
}

export function fileContent(ctx: Ctx): void {
  const f = ctx.state.files.get(ctx.params.id!);
  if (!f) return noSuch(ctx, 'File', ctx.params.id!);
  sendBody(ctx, 200, f.content, 'application/octet-stream');
}

// ---------------------------------------------------------------- batches

/** The `model` of the first request line of a batch input file, as OpenAI reports it on the batch object. */
function batchModel(ctx: Ctx, fileId: unknown): string | undefined {
  const content = typeof fileId === 'string' ? ctx.state.files.get(fileId)?.content : undefined;
  const first = content?.toString('utf8').split('\n', 1)[0];
  try {
    const model = (JSON.parse(first ?? '') as { body?: { model?: unknown } }).body?.model;
    return typeof model === 'string' ? model : undefined;
  } catch {
    return undefined;
  }
}

export function createBatch(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'input_file_id', 'endpoint', 'completion_window');
  if (!body) return;
  const id = `batch_${ctx.hash}`;
  const batch: Json = {
    id,
    object: 'batch',
    endpoint: body.endpoint,
    model: batchModel(ctx, body.input_file_id),
    errors: null,
    input_file_id: body.input_file_id,
    completion_window: body.completion_window,
    status: 'validating',
    output_file_id: null,
    error_file_id: null,
    created_at: CREATED,
    in_progress_at: null,
    expires_at: CREATED + 86400,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: 0, completed: 0, failed: 0 },
    metadata: body.metadata ?? null,
  };
  ctx.state.batches.set(id, batch);
  sendJson(ctx, 200, batch);
}

export function listBatches(ctx: Ctx): void {
  sendJson(ctx, 200, list([...ctx.state.batches.values()]));
}

export function getBatch(ctx: Ctx): void {
  const b = ctx.state.batches.get(ctx.params.id!);
  if (!b) return noSuch(ctx, 'Batch', ctx.params.id!);
  sendJson(ctx, 200, b);
}

export function cancelBatch(ctx: Ctx): void {
  const b = ctx.state.batches.get(ctx.params.id!);
  if (!b) return noSuch(ctx, 'Batch', ctx.params.id!);
  b.status = 'cancelling';
  b.cancelling_at = CREATED + 1;
  sendJson(ctx, 200, b);
}

const BATCH_STATUSES = ['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'];
/** Timestamp field set when a batch enters a status (the others stay as they were). */
const STATUS_AT: Record<string, string> = {
  in_progress: 'in_progress_at',
  finalizing: 'finalizing_at',
  completed: 'completed_at',
  failed: 'failed_at',
  expired: 'expired_at',
  cancelling: 'cancelling_at',
  cancelled: 'cancelled_at',
};

/**
 * Test-only: `POST /v1/__fake/batches/{id}/status` with `{"status": "completed"}` moves a batch
 * to that status, as OpenAI's batch runner would (tests call the fake directly, never through
 * the gateway). An optional `usage` (OpenAI's batch usage object) is set on the batch. The
 * status's timestamp is the current time, as OpenAI's is.
 */
export function setBatchStatus(ctx: Ctx): void {
  const b = ctx.state.batches.get(ctx.params.id!);
  if (!b) return noSuch(ctx, 'Batch', ctx.params.id!);
  const body = readJsonWith(ctx, 'status');
  if (!body) return;
  const status = body.status;
  if (typeof status !== 'string' || !BATCH_STATUSES.includes(status)) {
    return sendError(ctx, 400, `Invalid batch status: ${String(status)}`, { param: 'status' });
  }
  b.status = status;
  const at = STATUS_AT[status];
  if (at) b[at] = Math.floor(Date.now() / 1000);
  if (body.usage !== undefined) b.usage = body.usage;
  sendJson(ctx, 200, b);
}

// ---------------------------------------------------------------- fine-tuning

export function createFtJob(ctx: Ctx): void {
  const body = readJsonWith(ctx, 'model', 'training_file');
  if (!body) return;
  const id = `ftjob-${ctx.hash}`;
  const job: Json = {
    id,
    object: 'fine_tuning.job',
    model: body.model,
    created_at: CREATED,
    finished_at: null,
    fine_tuned_model: null,
    organization_id: 'org-fake',
    result_files: [],
    status: 'validating_files',
    validation_file: body.validation_file ?? null,
    training_file: body.training_file,
    hyperparameters: { n_epochs: 'auto', batch_size: 'auto', learning_rate_multiplier: 'auto' },
    trained_tokens: null,
    error: null,
    seed: typeof body.seed === 'number' ? body.seed : 42,
    estimated_finish: null,
    integrations: null,
    method: { type: 'supervised' },
    metadata: body.metadata ?? null,
    user_provided_suffix: body.suffix ?? null,
  };
  ctx.state.ftJobs.set(id, job);
  sendJson(ctx, 200, job);
}

export function listFtJobs(ctx: Ctx): void {
  const { first_id: _f, last_id: _l, ...page } = list([...ctx.state.ftJobs.values()]);
  sendJson(ctx, 200, page);
}

export function getFtJob(ctx: Ctx): void {
  const job = ctx.state.ftJobs.get(ctx.params.id!);
  if (!job) return noSuch(ctx, 'FineTuningJob', ctx.params.id!);
  sendJson(ctx, 200, job);
}

export function cancelFtJob(ctx: Ctx): void {
  const job = ctx.state.ftJobs.get(ctx.params.id!);
  if (!job) return noSuch(ctx, 'FineTuningJob', ctx.params.id!);
  job.status = 'cancelled';
  sendJson(ctx, 200, job);
}

export function ftJobEvents(ctx: Ctx): void {
  const id = ctx.params.id!;
  if (!ctx.state.ftJobs.has(id)) return noSuch(ctx, 'FineTuningJob', id);
  sendJson(ctx, 200, {
    object: 'list',
    data: [
      {
        object: 'fine_tuning.job.event',
        id: `ftevent-${shortHash(id)}`,
        created_at: CREATED,
        level: 'info',
        message: `Created fine-tuning job: ${id}`,
        data: {},
        type: 'message',
      },
    ],
    has_more: false,
  });
}
