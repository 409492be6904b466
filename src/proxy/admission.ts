import type { Caller } from '../auth/keys.js';
import type { Catalogue, ModelInfo } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import {
  ContextLengthExceededError,
  InvalidTypeError,
  MaxOutputTooLargeError,
  MissingModelError,
  ModelNotFoundError,
  PolicyNeedsModelError,
} from '../errors/errors.js';
import { checkModelAllowed } from '../keys/caller.js';
import type { Endpoint, ModelField } from './endpoints.js';
import type { FormFields } from './request-body.js';
import { isJsonObject, type JsonObject } from '../usage/json.js';
import { countTokensExactly, tokenUpperBound } from '../tokens/exact.js';
import { estimateTokens, promptChars, promptParts } from '../tokens/estimate.js';
import { quoteUnits, type Param, type UnitQuote } from '../usage/units.js';

/** What admission learned about a request: the input to limits, upstream and settlement. */
export interface Admission {
  /** The model the request runs on as the client named it (or the endpoint's default); undefined when implied. */
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
  /** A unit-priced request (images, speech, transcription, video): its quote. */
  readonly units?: UnitQuote | undefined;
}

/** A request that names no model and runs none: counted as one request, nothing more. */
export const MANAGEMENT: Admission = {
  requestedModel: undefined,
  model: undefined,
  inputTokens: 0,
  outputCap: undefined,
  stream: false,
  rewriteModelTo: undefined,
};

/**
 * The output cap the request names, for the reservation. Its range is the upstream's to check, not
 * tollgate's (OpenAI's reference sets no minimum for `max_completion_tokens`, 0 for the legacy
 * `max_tokens`, 16 for `max_output_tokens`): 0 is a cap of 0, and a value that is no cap at all
 * (negative, fractional, not a number) is forwarded as sent, for the upstream's own 400, while
 * the reservation takes the default as if none had been named.
 */
function outputCap(body: JsonObject, params: readonly string[]): { param: string; value: number } | undefined {
  for (const param of params) {
    const value = body[param];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return undefined;
    return { param, value };
  }
  return undefined;
}

/** The value at a field path of a JSON object (`['session', 'model']`); undefined when a step is missing. */
function fieldAt(body: JsonObject, path: readonly string[]): unknown {
  let value: unknown = body;
  for (const step of path) {
    if (!isJsonObject(value)) return undefined;
    value = value[step];
  }
  return value;
}

/** The model's parameter name for error answers (`session.model`): built only when one is thrown. */
function paramOf(field: ModelField): string {
  return field.path.join('.');
}

/**
 * The model a request runs on, by its endpoint's rule: type-checked (OpenAI's `invalid_type`),
 * required or defaulted, resolved in the catalogue (unknown: the configured policy), and checked
 * against the caller's allow-list and budget. A key whose policy names models or dollars is
 * never forwarded a request whose model tollgate cannot tell or price.
 */
export function resolveModel(
  field: ModelField,
  value: unknown,
  caller: Caller | undefined,
  catalogue: Catalogue,
  config: Config,
  metered: boolean,
  unitPriced = false,
): { requested: string | undefined; model: ModelInfo | undefined } {
  // `null` is "none named" where the upstream picks the model (the reference makes `model`
  // nullable there: runs, image calls, input token counts, eval runs); a required model is a string.
  if (value === null && field.rule !== 'required') value = undefined;
  if (value !== undefined && typeof value !== 'string') throw new InvalidTypeError(paramOf(field), 'a string', value);
  let requested = value === '' ? undefined : value;
  if (requested === undefined) {
    if (field.rule === 'required') throw new MissingModelError(paramOf(field));
    if (field.rule !== 'implied') requested = field.rule.default;
  }
  if (requested === undefined) {
    if (caller && (caller.models !== undefined || (metered && hasBudget(caller)))) {
      throw new PolicyNeedsModelError(caller.id, paramOf(field), 'unnamed');
    }
    return { requested: undefined, model: undefined };
  }
  const model = catalogue.resolve(requested);
  if (model === undefined && config.models.unknown === 'reject') throw new ModelNotFoundError(requested);
  if (caller) {
    checkModelAllowed(caller, requested, model);
    // Unit-priced endpoints check their own unit's price (quote, below); a token-priced one needs token prices.
    const unpriced = model?.prices === undefined || (!unitPriced && model.prices.unitsOnly === true);
    if (metered && unpriced && hasBudget(caller)) throw new PolicyNeedsModelError(caller.id, paramOf(field), 'unpriced', requested);
  }
  return { requested, model };
}

/** The key caps dollars (any budget window). */
export function hasBudget(caller: Caller): boolean {
  const budget = caller.quota?.budgetNano;
  return budget !== undefined && (budget.daily !== undefined || budget.monthly !== undefined || budget.total !== undefined);
}

/**
 * Validate a JSON request against its endpoint and the catalogue: the model (see resolveModel),
 * the output cap within the model's maximum, the prompt within the context window. Synchronous
 * unless the exact tokenizer has to run.
 */
export function admit(endpoint: Endpoint, body: unknown, caller: Caller | undefined, catalogue: Catalogue, config: Config): Admission | Promise<Admission> {
  if (!isJsonObject(body)) {
    if (body === undefined) body = {};
    else throw new InvalidTypeError('body', 'an object', body);
  }
  const json = body as JsonObject;
  const field = endpoint.model;
  if (!field) {
    // Containers: priced by session, without a model.
    if (endpoint.units) return { ...MANAGEMENT, units: quoteUnits(endpoint.units, catalogue.containers, { param: (name) => json[name], fileBytes: 0, charsPerToken: 1 }) };
    return json.stream === true ? { ...MANAGEMENT, stream: true } : MANAGEMENT;
  }
  const metered = endpoint.metered === true;
  const { requested: requestedModel, model } = resolveModel(field, fieldAt(json, field.path), caller, catalogue, config, metered, endpoint.units !== undefined);
  const stream = json.stream === true;
  const call = endpoint.modelCall;
  if (!call) {
    // Embeddings and the like: input only, estimated (their own per-input limits are upstream's to check).
    const inputTokens = endpoint.usage ? estimateTokens(promptChars(json), config.estimation.chars_per_token) : 0;
    const units = endpoint.units && quote(endpoint, (name) => json[name], 0, requestedModel, model, caller, config);
    return { requestedModel, model, inputTokens, outputCap: undefined, stream, rewriteModelTo: model?.routeTo, units };
  }

  const cap = outputCap(json, call.outputCapParams);
  if (cap && model?.maxOutputTokens !== undefined && cap.value > model.maxOutputTokens) {
    throw new MaxOutputTooLargeError(cap.param, cap.value, model.maxOutputTokens);
  }

  const { chars_per_token: charsPerToken, exact_count_threshold: threshold } = config.estimation;
  const estimate = estimateTokens(promptChars(json), charsPerToken);
  const outputCapValue = cap?.value;
  // Literals, not `{ ...base, inputTokens }`: adding a property to a spread copy takes V8's slow path.
  const admission = (inputTokens: number): Admission => ({ requestedModel, model, inputTokens, outputCap: outputCapValue, stream, rewriteModelTo: model?.routeTo });
  const window = model?.contextWindow;
  if (window === undefined || estimate < window * threshold) return admission(estimate);
  // Near the limit the estimate is not good enough to refuse on. Every token is at least one
  // byte: a prompt whose bytes fit the window fits it, uncounted. Otherwise count exactly, off
  // the event loop (the only await).
  const parts = promptParts(json);
  if (tokenUpperBound(parts) <= window) return admission(estimate);
  return countTokensExactly(parts).then((inputTokens) => {
    if (inputTokens > window) throw new ContextLengthExceededError(window, inputTokens, call.promptParam);
    return admission(inputTokens);
  });
}

/** A multipart form that names its model in a field (audio, image edits, videos); `fileBytes`: the size of its files. */
export function admitForm(
  endpoint: Endpoint,
  fields: FormFields,
  caller: Caller | undefined,
  catalogue: Catalogue,
  config: Config,
  fileBytes = 0,
): Admission {
  const field = endpoint.model;
  if (!field) return MANAGEMENT;
  const name = field.path[field.path.length - 1] as string;
  const { requested, model } = resolveModel(field, fields.get(name), caller, catalogue, config, endpoint.metered === true, endpoint.units !== undefined);
  const units = endpoint.units && quote(endpoint, (param) => fields.get(param), fileBytes, requested, model, caller, config);
  return { requestedModel: requested, model, inputTokens: 0, outputCap: undefined, stream: fields.get('stream') === 'true', rewriteModelTo: undefined, units };
}

/**
 * The quote of a unit-priced request (src/usage/units.ts). A key with a budget is never forwarded
 * one its model has no price for in that unit (a chat model asked for an image, an operator's model
 * without unit prices): it could not be budgeted.
 */
function quote(
  endpoint: Endpoint,
  param: Param,
  fileBytes: number,
  requested: string | undefined,
  model: ModelInfo | undefined,
  caller: Caller | undefined,
  config: Config,
): UnitQuote | undefined {
  const quoted = quoteUnits(endpoint.units as NonNullable<Endpoint['units']>, model?.prices?.units, { param, fileBytes, charsPerToken: config.estimation.chars_per_token });
  if (!quoted && requested !== undefined && caller && endpoint.metered === true && hasBudget(caller)) {
    throw new PolicyNeedsModelError(caller.id, (endpoint.model as ModelField).path.join('.'), 'unpriced', requested);
  }
  return quoted;
}
