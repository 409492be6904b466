import type { Caller } from '../auth/keys.js';
import type { ModelInfo } from '../config/catalogue.js';
import { QuotaExceededError } from '../errors/errors.js';
import type { Charge } from '../limits/limiter.js';
import type { CounterCall } from '../limits/store.js';
import { costOf, nanoToUsd } from '../usage/cost.js';
import type { Usage } from '../usage/extract.js';
import { FIELDS, usageKey } from './fields.js';
import type { UsageRecorder } from './recorder.js';
import { windowClock, windowTtlMs, type HourWindow, type Window, type WindowName } from './windows.js';

export { FIELDS, usageKey } from './fields.js';

export interface Quotas {
  /**
   * The charge of one request of `caller` for `model` (undefined when not in the catalogue),
   * reserving `inputTokens` + `outputCap` at the model's prices, or a unit-priced request's
   * quoted cost (`units`: its reservation, src/usage/units.ts).
   */
  chargeFor(caller: Caller, model: ModelInfo | undefined, inputTokens: number, outputCap: number, units?: Usage): Charge;
}

export interface QuotaOptions {
  readonly keyPrefix: string;
  /** Where the usage of keys without budgets or quotas goes (counted in process, flushed). */
  readonly recorder: UsageRecorder;
  /** How long an hourly usage hash is kept after its hour (config usage.hourly_retention_days); 0: none kept. */
  readonly hourlyRetentionMs?: number;
  readonly clock?: () => number;
}

/** A capped counter, for the refusal's wording. */
interface Cap {
  readonly kind: 'budget' | 'token_quota';
  readonly window: Window;
  readonly cap: number;
}

export function createQuotas(options: QuotaOptions): Quotas {
  const { keyPrefix, recorder } = options;
  const hourlyRetentionMs = options.hourlyRetentionMs ?? 0;
  const windowsNow = windowClock(options.clock ?? Date.now);

  const settledCounters = (hashes: readonly Hash[], actual: Usage, cost: number, reservedCost: number, reservedTokens: number, requests: number): CounterCall[] => {
    const tokens = actual.inputTokens + actual.outputTokens;
    const out: CounterCall[] = [];
    for (const { key, ttlMs } of hashes) {
      const add = (field: string, units: number): void => {
        if (units !== 0) out.push({ key, field, units, ttlMs });
      };
      add(FIELDS.requests, requests);
      add(FIELDS.input, actual.inputTokens);
      add(FIELDS.cached, actual.cachedTokens);
      add(FIELDS.output, actual.outputTokens);
      add(FIELDS.cost, cost);
      add(FIELDS.spend, cost - reservedCost);
      add(FIELDS.tokens, tokens - reservedTokens);
    }
    return out;
  };

  /** The hourly hash's counters (settled usage, one request), with the same settlement call. */
  const hourlyCounters = (out: CounterCall[], keyId: string, hour: HourWindow, now: number, actual: Usage, cost: number): CounterCall[] => {
    const key = usageKey(keyPrefix, keyId, hour.id);
    // The expiry is the hash's: set once, with the one field every request writes.
    out.push({ key, field: FIELDS.requests, units: 1, ttlMs: hour.endsAt - now + hourlyRetentionMs });
    if (actual.inputTokens !== 0) out.push({ key, field: FIELDS.input, units: actual.inputTokens });
    if (actual.cachedTokens !== 0) out.push({ key, field: FIELDS.cached, units: actual.cachedTokens });
    if (actual.outputTokens !== 0) out.push({ key, field: FIELDS.output, units: actual.outputTokens });
    if (cost !== 0) out.push({ key, field: FIELDS.cost, units: cost });
    return out;
  };

  return {
    chargeFor(caller, model, inputTokens, outputCap, units) {
      const { now, windows, hour } = windowsNow();
      const prices = model?.prices;
      const actualCost = (actual: Usage): number => costOf(prices, actual).total;
      const quota = caller.quota;
      if (!quota) {
        // No caps: nothing to check at admission; the usage is summed in process and flushed.
        return {
          counters: NO_COUNTERS,
          settle(actual) {
            recorder.record(caller.id, windows, now, actual, actualCost(actual), hourlyRetentionMs > 0 ? hour : undefined);
            return NO_COUNTERS;
          },
          refusal: neverRefused,
        };
      }
      const hashes = windows.map((window) => ({ window, key: usageKey(keyPrefix, caller.id, window.id), ttlMs: windowTtlMs(window, now) }));
      // The most the request can cost: the input estimate at the input price, the output cap at the output price.
      const reservedTokens = inputTokens + outputCap;
      // At least one nano-dollar: a request whose cost is only known afterwards (an image, a
      // transcription, a run) still cannot pass a budget that is used up. Settlement corrects it.
      const reservedCost = Math.max(1, costOf(prices, units ?? { inputTokens, cachedTokens: 0, outputTokens: outputCap }).total);
      const counters: CounterCall[] = [];
      const caps: (Cap | undefined)[] = [];
      for (const { window, key, ttlMs } of hashes) {
        const budget = quota.budgetNano[window.name];
        const tokenCap = window.name === 'total' ? undefined : quota.tokens[window.name];
        counters.push({ key, field: FIELDS.spend, cap: budget, units: reservedCost, ttlMs });
        caps.push(budget === undefined ? undefined : { kind: 'budget', window, cap: budget });
        counters.push({ key, field: FIELDS.tokens, cap: tokenCap, units: reservedTokens, ttlMs });
        caps.push(tokenCap === undefined ? undefined : { kind: 'token_quota', window, cap: tokenCap });
        counters.push({ key, field: FIELDS.requests, units: 1, ttlMs });
        caps.push(undefined);
      }
      return {
        counters,
        settle(actual) {
          const cost = actualCost(actual);
          const out = settledCounters(hashes, actual, cost, reservedCost, reservedTokens, 0);
          return hourlyRetentionMs > 0 ? hourlyCounters(out, caller.id, hour, now, actual, cost) : out;
        },
        refusal(index, values) {
          const cap = caps[index];
          const used = values[index] ?? 0;
          if (!cap) return new Error(`counter ${index} has no cap`);
          return quotaRefusal(caller.id, cap, used, cap.kind === 'budget' ? reservedCost : reservedTokens);
        },
      };
    },
  };
}

const NO_COUNTERS: readonly CounterCall[] = [];
const neverRefused = (): Error => new Error('a key without budgets or quotas is never refused by them');

interface Hash {
  readonly key: string;
  readonly ttlMs: number;
}

const WINDOW_WORD: Record<WindowName, string> = { daily: 'daily', monthly: 'monthly', total: 'total' };

/** OpenAI's insufficient_quota 429, saying which cap of the key is used up and when it renews. */
function quotaRefusal(keyId: string, cap: Cap, used: number, requested: number): QuotaExceededError {
  const renews = cap.window.endsAt === Infinity ? 'It does not renew.' : `It renews at ${new Date(cap.window.endsAt).toISOString()}.`;
  if (cap.kind === 'budget') {
    return new QuotaExceededError(
      'budget',
      `Key \`${keyId}\` has reached its ${WINDOW_WORD[cap.window.name]} budget of $${usd(cap.cap)}: $${usd(used)} spent or reserved, this request may cost up to $${usd(requested)}. ${renews}`,
    );
  }
  return new QuotaExceededError(
    'token_quota',
    `Key \`${keyId}\` has reached its ${WINDOW_WORD[cap.window.name]} token quota of ${cap.cap}: ${used} tokens used or reserved, this request may use up to ${requested}. ${renews}`,
  );
}

/** Dollars for a message: cents, or more decimals for sums below a cent. */
function usd(nano: number): string {
  const dollars = nanoToUsd(nano);
  return dollars >= 0.01 || dollars === 0 ? dollars.toFixed(2) : String(Number(dollars.toPrecision(3)));
}
