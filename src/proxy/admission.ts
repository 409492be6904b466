import type { Catalogue, ModelInfo } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import {
  ContextLengthExceededError,
  InvalidRequestError,
  MaxOutputTooLargeError,
  ModelNotFoundError,
} from '../errors/errors.js';
import type { Endpoint } from './endpoints.js';
import { isJsonObject, type JsonObject } from '../usage/json.js';
import { countTokensExactly, tokenUpperBound } from '../tokens/exact.js';
import { estimateTokens, promptChars, promptParts } from '../tokens/estimate.js';

/** What admission learned about a request: the input to limits, upstream and settlement. */
export interface Admission {
  /** The model as the client named it (undefined when the body names none). */
  readonly requestedModel: string | undefined;
  /** The catalogue entry, undefined for an unknown model passed through. */
  readonly model: ModelInfo | undefined;
  /** Estimated prompt tokens (exact when the estimate came near the context window). */
  readonly inputTokens: number;
  /** The output cap the client asked for, undefined when it named none. */
  readonly outputCap: number | undefined;
  readonly stream: boolean;
  /** The model name to send upstream when the catalogue maps it elsewhere. */
  readonly rewriteModelTo: string | undefined;
}

function outputCap(body: JsonObject, params: readonly string[]): { param: string; value: number } | undefined {
  for (const param of params) {
    const value = body[param];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new InvalidRequestError(`Invalid '${param}': expected a positive integer.`, param, 'invalid_value');
    }
    return { param, value };
  }
  return undefined;
}

/**
 * Validate a JSON request against the catalogue: known model (or the pass-through policy),
 * output cap within the model's maximum, prompt within the context window. Synchronous unless
 * the exact tokenizer has to run.
 */
export function admit(endpoint: Endpoint, body: unknown, catalogue: Catalogue, config: Config): Admission | Promise<Admission> {
  const json = isJsonObject(body) ? body : {};
  const requestedModel = typeof json.model === 'string' ? json.model : undefined;
  const model = requestedModel === undefined ? undefined : catalogue.resolve(requestedModel);
  if (endpoint.checksModel && requestedModel !== undefined && model === undefined && config.models.unknown === 'reject') {
    throw new ModelNotFoundError(requestedModel);
  }
  const stream = json.stream === true;
  const call = endpoint.modelCall;
  if (!call) {
    // Embeddings and the like: input only, estimated (their own per-input limits are upstream's to check).
    const inputTokens = endpoint.usage ? estimateTokens(promptChars(json), config.estimation.chars_per_token) : 0;
    return { requestedModel, model, inputTokens, outputCap: undefined, stream, rewriteModelTo: model?.routeTo };
  }

  const cap = outputCap(json, call.outputCapParams);
  if (cap && model?.maxOutputTokens !== undefined && cap.value > model.maxOutputTokens) {
    throw new MaxOutputTooLargeError(cap.param, cap.value, model.maxOutputTokens);
  }

  const { chars_per_token: charsPerToken, exact_count_threshold: threshold } = config.estimation;
  const estimate = estimateTokens(promptChars(json), charsPerToken);
  const base = { requestedModel, model, outputCap: cap?.value, stream, rewriteModelTo: model?.routeTo };
  const window = model?.contextWindow;
  if (window === undefined || estimate < window * threshold) return { ...base, inputTokens: estimate };
  // Near the limit the estimate is not good enough to refuse on. Every token is at least one
  // byte: a prompt whose bytes fit the window fits it, uncounted. Otherwise count exactly, off
  // the event loop (the only await).
  const parts = promptParts(json);
  if (tokenUpperBound(parts) <= window) return { ...base, inputTokens: estimate };
  return countTokensExactly(parts).then((inputTokens) => {
    if (inputTokens > window) throw new ContextLengthExceededError(window, inputTokens, call.promptParam);
    return { ...base, inputTokens };
  });
}
