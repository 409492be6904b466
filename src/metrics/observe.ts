import type { FastifyBaseLogger } from 'fastify';
import type { BatchUsage } from '../batch/index.js';
import type { Catalogue } from '../config/catalogue.js';
import { costOf, nanoToUsd } from '../usage/cost.js';
import type { Metrics } from './metrics.js';

/** What the per-request log line needs from metrics: counting, and the request's cost. */
export type Observed = Pick<Metrics, 'recordRequest'>;

/** With metrics off: nothing is counted, the log line still gets the request's cost. */
export function costOnly(catalogue: Catalogue): Observed {
  return {
    recordRequest: (state) => (state.usage ? costOf(catalogue.resolve(state.modelLabel)?.prices, state.usage) : undefined),
  };
}

/** The bounded `model` label of a model name: its catalogue name, or `other`. */
export function modelLabel(catalogue: Catalogue, model: string | undefined): string {
  return (model !== undefined && catalogue.resolve(model)?.name) || 'other';
}

/** A batch the queue saw completed: its usage at the Batch prices, counted once, and one log line. */
export function observeBatch(batch: BatchUsage, metrics: Metrics, catalogue: Catalogue, logger: FastifyBaseLogger): void {
  const model = modelLabel(catalogue, batch.model);
  const cost = metrics.usage.count(metrics.keyLabel(batch.keyId), model, batch.usage, 'reported', true);
  logger.info(
    {
      batch_id: batch.batchId,
      key_id: batch.keyId,
      model,
      input_tokens: batch.usage.inputTokens,
      cached_tokens: batch.usage.cachedTokens,
      output_tokens: batch.usage.outputTokens,
      tokens_source: 'reported',
      cost_usd: nanoToUsd(cost.total),
      cost_nano: cost.total,
    },
    'batch usage',
  );
}
