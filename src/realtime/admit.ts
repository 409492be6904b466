import type { Caller } from '../auth/keys.js';
import type { Catalogue, ModelInfo } from '../config/catalogue.js';
import type { TollgateError } from '../errors/errors.js';
import { QuotaExceededError, RateLimitError, RequestTooLargeError } from '../errors/errors.js';
import type { Limiter, Reservation } from '../limits/limiter.js';
import type { Quotas } from '../quota/charge.js';

export interface Admitter {
  readonly limiter: Limiter;
  readonly quotas: Quotas;
  readonly catalogue: Catalogue;
  /** Count a refusal by the limiter (the gateway's rate-limited counter). */
  readonly onRefused: (keyId: string, model: string, limit: string) => void;
}

/** Why a response.create was refused: the metric's reason and the error the client gets. */
export interface Refusal {
  readonly reason: string;
  readonly error: TollgateError | Error;
}

/**
 * One `response.create`: the key's TPM (estimated conversation + output cap), budgets and token
 * quotas, in the limiter's one atomic step. It takes no request from RPM / RPD (the session did).
 */
export function admitResponse(deps: Admitter, caller: Caller, model: ModelInfo | undefined, modelLabel: string, inputTokens: number, cap: number): Promise<Reservation | Refusal> {
  const refused = (err: unknown): Refusal => {
    const reason = err instanceof RateLimitError || err instanceof QuotaExceededError ? err.kind : err instanceof RequestTooLargeError ? 'tpm' : 'error';
    if (reason !== 'error') deps.onRefused(caller.id, modelLabel, reason);
    return { reason, error: err instanceof Error ? err : new Error(String(err)) };
  };
  try {
    const reserved = deps.limiter.admit({ caller, model: modelLabel, tokens: inputTokens + cap, requests: 0, charge: deps.quotas.chargeFor(caller, model, inputTokens, cap) });
    return reserved instanceof Promise ? reserved.catch(refused) : Promise.resolve(reserved);
  } catch (err) {
    return Promise.resolve(refused(err));
  }
}

export function isRefusal(value: Reservation | Refusal): value is Refusal {
  return 'reason' in value;
}

/**
 * A reservation that takes nothing and can still be settled: the charge of a response the upstream
 * ran although it was refused (started by the server, cancelled after it began), so what it used
 * is still counted. undefined when even that is refused (a budget already past its cap).
 */
export function chargeAfter(deps: Admitter, caller: Caller, model: ModelInfo | undefined, modelLabel: string): Promise<Reservation | undefined> {
  try {
    const reserved = deps.limiter.admit({ caller, model: modelLabel, tokens: 0, requests: 0, charge: deps.quotas.chargeFor(caller, model, 0, 0) });
    return reserved instanceof Promise ? reserved.catch(() => undefined) : Promise.resolve(reserved);
  } catch {
    return Promise.resolve(undefined);
  }
}
