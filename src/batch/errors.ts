import { TollgateError } from '../errors/errors.js';

const GROUPED = new Intl.NumberFormat('en-US');

/**
 * A batch whose tokens would take the key's queue for a model over its limit. OpenAI accepts such
 * a batch and then fails it with code `token_limit_exceeded` and this message; tollgate refuses
 * it before it reaches the upstream, with OpenAI's message (naming the key where OpenAI names the
 * organisation) as a 429 of type `tokens`. Retrying now cannot help (only a pending batch ending
 * can), so `x-should-retry: false` keeps the openai SDK from retrying.
 */
export class BatchQueueLimitError extends TollgateError {
  readonly status = 429;
  readonly type = 'tokens';
  override readonly code = 'token_limit_exceeded';
  override readonly headers: Readonly<Record<string, string>> = { 'x-should-retry': 'false' };
  constructor(
    readonly model: string,
    readonly keyId: string,
    readonly limit: number,
  ) {
    super(
      `Enqueued token limit reached for ${model} in organization ${keyId}. Limit: ${GROUPED.format(limit)} enqueued tokens. Please try again once some in_progress batches have been completed.`,
    );
  }
}
