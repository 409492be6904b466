import type { Catalogue, ModelInfo } from '../config/catalogue.js';
import { ModelRetiredError } from '../errors/errors.js';
import type { Admission } from './admission.js';
import type { RequestState } from './request-state.js';

/**
 * Model retirement (catalogue `shutdown_date`, `successor`, `on_shutdown`). Before the date the
 * model is served as itself and its answers say it is going away; from the date on it is refused
 * (404 model_not_found naming the successor) or, per model or per key, routed to its successor:
 * limited and priced as the successor, the upstream asked for the successor, and the answer's
 * `model` left as the upstream reports it.
 */
export function applyRetirement(admission: Admission, state: RequestState, catalogue: Catalogue, now: number = Date.now()): Admission {
  const model = admission.model;
  const retirement = model?.retirement;
  if (!retirement) return admission;
  if (now < retirement.shutdownMs) {
    state.deprecated = retirement;
    return admission;
  }
  const requested = admission.requestedModel ?? (model as ModelInfo).name;
  const successor = retirement.successor === undefined ? undefined : catalogue.resolve(retirement.successor);
  const policy = state.caller?.onShutdown ?? retirement.onShutdown;
  if (policy === 'reject' || !successor) throw new ModelRetiredError(requested, retirement.shutdownDate, retirement.successor);
  state.modelRouted = `${requested} -> ${successor.name}`;
  return { ...admission, model: successor, rewriteModelTo: successor.routeTo ?? successor.name };
}
