import { readUsage, type Usage } from '../usage/extract.js';
import type { BatchStore } from './store.js';

/**
 * Usage of completed batches, reported once per batch id: whichever instance sees the batch
 * `completed` first and however often it is seen (the store's `markCounted`: a SET NX in Redis).
 * The mark is kept `USAGE_MARK_TTL_MS`; a batch completed longer than `USAGE_WINDOW_MS` ago is
 * never counted, so an expired mark cannot let it be counted twice.
 */

const DAY_MS = 86_400_000;
const USAGE_WINDOW_MS = 30 * DAY_MS;
const USAGE_MARK_TTL_MS = USAGE_WINDOW_MS + 5 * DAY_MS;
export const MAX_ID_LENGTH = 256;

/** A completed batch's usage, reported once. */
export interface BatchUsage {
  readonly batchId: string;
  readonly keyId: string;
  /** The batch object's `model`, else the one model its input file names (as counted), else undefined. */
  readonly model: string | undefined;
  readonly usage: Usage;
}

export function parseObject(body: Buffer | undefined): Record<string, unknown> | undefined {
  if (body === undefined || body.length === 0) return undefined;
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** What the queue reads of a batch object. */
export interface BatchObject {
  readonly id: string;
  readonly status: string;
  readonly model: string | undefined;
  readonly inputFileId: string | undefined;
  /** `completed_at`, in seconds. */
  readonly completedAt: number | undefined;
  readonly usage: unknown;
}

const optionalString = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/** A batch object's id and status (and what usage accounting needs), or undefined when the answer is not one. */
export function readBatch(body: Buffer | undefined): BatchObject | undefined {
  const value = parseObject(body);
  if (!value || typeof value.id !== 'string' || typeof value.status !== 'string') return undefined;
  if (value.id.length === 0 || value.id.length > MAX_ID_LENGTH) return undefined;
  return {
    id: value.id,
    status: value.status,
    model: optionalString(value.model),
    inputFileId: optionalString(value.input_file_id),
    completedAt: typeof value.completed_at === 'number' ? value.completed_at : undefined,
    usage: value.usage,
  };
}

export interface UsageCounterOptions {
  readonly store: BatchStore;
  readonly onUsage: (usage: BatchUsage) => void;
  readonly onError: (error: unknown, during: string) => void;
  readonly clock: () => number;
}

/** Count a batch object's usage for a key if it is completed, carries usage, and was not counted yet. Never throws. */
export function createUsageCounter(options: UsageCounterOptions): (keyId: string, batch: BatchObject) => Promise<void> {
  const { store, clock } = options;
  const onlyModelOf = async (fileId: string | undefined): Promise<string | undefined> => {
    const models = fileId === undefined ? undefined : (await store.getFile(fileId))?.models;
    return models?.length === 1 ? models[0]?.model : undefined;
  };
  return async (keyId, batch) => {
    if (batch.status !== 'completed') return;
    const usage = readUsage('responses', batch.usage);
    if (!usage) return;
    if (batch.completedAt !== undefined && clock() - batch.completedAt * 1000 > USAGE_WINDOW_MS) return;
    try {
      if (!(await store.markCounted(batch.id, USAGE_MARK_TTL_MS))) return;
      const model = batch.model ?? (await onlyModelOf(batch.inputFileId));
      options.onUsage({ batchId: batch.id, keyId, model, usage });
    } catch (error) {
      options.onError(error, 'batch-usage');
    }
  };
}
