import type { Caller } from '../auth/keys.js';
import type { Catalogue } from '../config/catalogue.js';
import type { TierLimits } from '../config/defaults.js';
import { RateLimitError, RequestTooLargeError, type LimitKind } from '../errors/errors.js';
import { goDuration } from './duration.js';
import type { Usage } from '../usage/extract.js';
import type { AdmitOutcome, BucketCall, CounterCall, LimiterStore } from './store.js';
import { chain, ignoreValue } from '../util/maybe.js';

/**
 * Per-key, per-model RPM / RPD / TPM limits that mirror OpenAI's: continuously refilling
 * buckets, reserved in one atomic step at admission (1 request + estimated input + output cap)
 * and settled exactly once to the real usage afterwards.
 */

const WINDOW_MS: Record<LimitKind, number> = { rpm: 60_000, rpd: 86_400_000, tpm: 60_000 };
const KINDS: readonly LimitKind[] = ['rpm', 'rpd', 'tpm'];

export interface LimitRequest {
  readonly caller: Caller;
  /** Bucket identity: the catalogue name (aliases share it), or `other`. */
  readonly model: string;
  /** Tokens to reserve: estimated input + output cap (or the configured default). */
  readonly tokens: number;
  /**
   * Requests to take from RPM / RPD (default 1). A realtime session takes one when it opens; each of
   * its `response.create`s takes 0 (only tokens), but still reads the request buckets for the headers.
   */
  readonly requests?: number;
  /** Give up waiting (max_wait_ms) when this fires. */
  readonly signal?: { readonly aborted: boolean };
  /** The key's usage counters and caps (budgets, token quotas), taken in the same atomic step. */
  readonly charge?: Charge | undefined;
}

/**
 * What a request is charged besides its buckets (src/quota/): usage counters in calendar windows,
 * some capped. Its counters live under the key's hash tag (`keyTag`), so one script takes both.
 */
export interface Charge {
  /** Counters to check and take at admission; empty for a key without budgets or quotas. */
  readonly counters: readonly CounterCall[];
  /** The counter corrections for the real usage (empty when the usage is recorded elsewhere). */
  settle(actual: Usage): readonly CounterCall[];
  /** The answer when counter `index` refused, given the counters' values. */
  refusal(index: number, values: readonly number[]): Error;
}

/** An admitted request's hold on the buckets. */
export interface Reservation {
  /** x-ratelimit-* headers for the response. */
  readonly headers: Readonly<Record<string, string>>;
  readonly reservedTokens: number;
  /**
   * Correct the reservation to what was really used (tokens: input, cached included, + output;
   * the charge's counters). Only the first call counts.
   */
  settle(actual: Usage): void | Promise<void>;
}

/** The hash tag of a key's storage: its buckets (every model) and its usage counters share it. */
export function keyTag(keyPrefix: string, keyId: string): string {
  return `${keyPrefix}{${keyId}}`;
}

export interface Limiter {
  /**
   * Reserve, or throw RateLimitError / RequestTooLargeError (or the charge's refusal):
   * synchronously when the store answers at once, otherwise as a rejected promise.
   */
  admit(request: LimitRequest): Reservation | Promise<Reservation>;
  /** The figures that apply to a caller (tier, then the key's overrides; then, with a model, its per-model ones). */
  figures(caller: Caller, model?: string): TierLimits;
  /** The key's buckets for a model now, without taking anything: what x-ratelimit-* would say. */
  peek(caller: Caller, model: string): Promise<Readonly<Record<string, string>>>;
}

export interface LimiterOptions {
  readonly store: LimiterStore;
  readonly catalogue: Catalogue;
  /** Prefix of every storage key (tests use one per file). */
  readonly keyPrefix: string;
  readonly sleep?: (ms: number) => Promise<void>;
  /** The clock of the max_wait_ms deadline (injected with `sleep`, so tests control both). */
  readonly now?: () => number;
}

export interface PlannedBucket extends BucketCall {
  readonly kind: LimitKind;
}

const NO_RESERVATION: Reservation = { headers: {}, reservedTokens: 0, settle: () => {} };
const NO_BUCKETS: readonly PlannedBucket[] = [];
const NO_COUNTERS: readonly CounterCall[] = [];

/** A request with nothing to reserve whose usage is still recorded by its charge. */
function chargeOnly(charge: Charge, store: LimiterStore): Reservation {
  let settled = false;
  return {
    headers: {},
    reservedTokens: 0,
    settle(actual) {
      if (settled) return;
      settled = true;
      const counters = charge.settle(actual);
      if (counters.length === 0) return;
      return ignoreValue(store.settle([], counters, true));
    },
  };
}

export function createLimiter(options: LimiterOptions): Limiter {
  const { store, catalogue, keyPrefix } = options;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = options.now ?? Date.now;

  const figuresOf = new WeakMap<Caller, TierLimits>();
  const keyFigures = (caller: Caller): TierLimits => {
    let found = figuresOf.get(caller);
    if (!found) {
      found = ownFigures(caller);
      figuresOf.set(caller, found);
    }
    return found;
  };
  // Per-model overrides (limits.models), merged over the key's figures once per caller and model.
  const modelFiguresOf = new WeakMap<Caller, Map<string, TierLimits>>();
  const figures = (caller: Caller, model?: string): TierLimits => {
    const own = model === undefined ? undefined : caller.limits?.models?.[model];
    if (!own) return keyFigures(caller);
    let perModel = modelFiguresOf.get(caller);
    if (!perModel) {
      perModel = new Map();
      modelFiguresOf.set(caller, perModel);
    }
    let found = perModel.get(model as string);
    if (!found) {
      const base = keyFigures(caller);
      found = {
        ...base,
        rpm: own.rpm !== undefined ? own.rpm : base.rpm,
        rpd: own.rpd !== undefined ? own.rpd : base.rpd,
        tpm: own.tpm !== undefined ? own.tpm : base.tpm,
      };
      perModel.set(model as string, found);
    }
    return found;
  };
  const ownFigures = (caller: Caller): TierLimits => {
    const tier = catalogue.tierLimits(caller.tier);
    const own = caller.limits;
    if (!own) return tier;
    return {
      rpm: own.rpm !== undefined ? own.rpm : tier.rpm,
      rpd: own.rpd !== undefined ? own.rpd : tier.rpd,
      tpm: own.tpm !== undefined ? own.tpm : tier.tpm,
      batch_queue_tokens: own.batch_queue_tokens !== undefined ? own.batch_queue_tokens : tier.batch_queue_tokens,
    };
  };

  // Bucket keys and figures per caller object and model, built once (a caller's figures are fixed
  // for its object): per request no scope string is built or hashed; only the TPM cost changes.
  const plans = new WeakMap<Caller, Map<string, PlannedBucket[]>>();
  const planned = (caller: Caller, model: string): PlannedBucket[] => {
    let byModel = plans.get(caller);
    if (!byModel) {
      byModel = new Map();
      plans.set(caller, byModel);
    }
    let buckets = byModel.get(model);
    if (!buckets) {
      buckets = [];
      const limits = figures(caller, model);
      // One hash tag per key: every bucket and counter of one call lives on one Cluster slot.
      const scope = `${keyTag(keyPrefix, caller.id)}|${model}`;
      for (const kind of KINDS) {
        const limit = limits[kind];
        if (limit === null || limit === undefined) continue;
        buckets.push({ kind, key: `${scope}:${kind}`, limit, windowMs: WINDOW_MS[kind], units: 1 });
      }
      byModel.set(model, buckets);
    }
    return buckets;
  };
  const plan = (caller: Caller, model: string, tokens: number, requests = 1): PlannedBucket[] =>
    planned(caller, model).map((b) => (b.kind === 'tpm' ? withUnits(b, tokens) : requests === 1 ? b : withUnits(b, requests)));

  /** The waiting loop: refusals within the key's max_wait_ms, a store that answers later. */
  const admitWaiting = async (
    request: LimitRequest,
    buckets: readonly PlannedBucket[],
    counters: readonly CounterCall[],
    first: AdmitOutcome | Promise<AdmitOutcome> | undefined,
  ): Promise<Reservation> => {
    const { charge } = request;
    const deadline = now() + (request.caller.maxWaitMs ?? 0);
    let pending = first;
    for (;;) {
      const outcome = await (pending ?? store.admit(buckets, counters));
      pending = undefined;
      if (outcome.allowed) return reservation(store, buckets, outcome, charge);
      // A budget or quota: waiting cannot help.
      if (charge && outcome.refusing >= buckets.length) throw charge.refusal(outcome.refusing - buckets.length, outcome.values ?? []);
      const refused = refusal(request.model, request.caller.id, buckets, outcome);
      const waitMs = outcome.waitMs;
      if (now() + waitMs > deadline || request.signal?.aborted) throw refused;
      await sleep(waitMs);
      if (request.signal?.aborted) throw refused;
    }
  };

  return {
    figures,
    async peek(caller, model) {
      const buckets = plan(caller, model, 0).map((b) => ({ ...b, units: 0 }));
      if (buckets.length === 0) return {};
      return rateLimitHeaders(buckets, { levels: await store.settle(buckets) });
    },
    admit(request) {
      const { charge } = request;
      const counters = charge?.counters ?? NO_COUNTERS;
      const buckets = plan(request.caller, request.model, request.tokens, request.requests);
      if (buckets.length === 0 && counters.length === 0) return charge ? chargeOnly(charge, store) : NO_RESERVATION;
      tooLarge(request, buckets, request.caller.id);
      const outcome = store.admit(buckets, counters);
      const decide = (answer: AdmitOutcome): Reservation => {
        if (answer.allowed) return reservation(store, buckets, answer, charge);
        if (charge && answer.refusing >= buckets.length) throw charge.refusal(answer.refusing - buckets.length, answer.values ?? []);
        throw refusal(request.model, request.caller.id, buckets, answer);
      };
      // Without max_wait_ms there is one answer to take: at once from process memory (no
      // promise at all), or when Redis's comes.
      if (!request.caller.maxWaitMs) return chain(outcome, decide);
      if (!(outcome instanceof Promise) && outcome.allowed) return decide(outcome);
      return admitWaiting(request, buckets, counters, outcome);
    },
  };
}

/** A planned bucket with this request's units. A literal, not `{ ...bucket, units }`: a spread copy is V8's slow path (per request). */
function withUnits(b: PlannedBucket, units: number): PlannedBucket {
  return { kind: b.kind, key: b.key, limit: b.limit, windowMs: b.windowMs, units };
}

/** A request larger than a TPM bucket's whole capacity can never be admitted: OpenAI's "Request too large". */
function tooLarge(request: LimitRequest, buckets: readonly PlannedBucket[], owner: string): void {
  for (const bucket of buckets) {
    if (bucket.kind === 'tpm' && request.tokens > bucket.limit) throw new RequestTooLargeError(request.model, owner, bucket.limit, request.tokens, {});
  }
}

function reservation(store: LimiterStore, buckets: readonly PlannedBucket[], outcome: AdmitOutcome, charge: Charge | undefined): Reservation {
  let settled = false;
  const tpm = buckets.find((b) => b.kind === 'tpm');
  const reserved = tpm?.units ?? 0;
  const correct = (bucket: PlannedBucket | undefined, via: AdmitOutcome | undefined, delta: number, counters = NO_COUNTERS): void | Promise<void> => {
    const calls = bucket && delta !== 0 ? [withUnits(bucket, delta)] : NO_BUCKETS;
    if (!via || (calls.length === 0 && counters.length === 0)) return;
    // Nothing waits for a request's settlement: the store may send it with its next call.
    return ignoreValue(via.settleVia ? via.settleVia(calls, counters) : store.settle(calls, counters, true));
  };
  return {
    headers: rateLimitHeaders(buckets, outcome),
    reservedTokens: reserved,
    settle(actual) {
      if (settled) return;
      settled = true;
      const delta = reserved - Math.max(0, Math.round(actual.inputTokens + actual.outputTokens));
      const counters = charge ? charge.settle(actual) : NO_COUNTERS;
      if (delta === 0 && counters.length === 0) return;
      return correct(tpm, outcome, delta, counters);
    },
  };
}

export function refusal(
  model: string,
  owner: string,
  buckets: readonly PlannedBucket[],
  outcome: AdmitOutcome,
): RateLimitError {
  const bucket = buckets[outcome.refusing] as PlannedBucket;
  const level = outcome.levels[outcome.refusing] ?? 0;
  const limit = outcome.limits?.[outcome.refusing] ?? bucket.limit;
  const remaining = Math.max(0, Math.floor(level / bucket.windowMs));
  return new RateLimitError({
    kind: bucket.kind,
    model,
    keyId: owner,
    limit,
    used: limit - remaining,
    requested: bucket.units,
    waitMs: outcome.waitMs,
    tryAgain: goDuration(outcome.waitMs),
    // The refusing side's headers: the key's, or the organisation ceiling's.
    headers: rateLimitHeaders(buckets, outcome),
  });
}

/**
 * OpenAI's headers: the per-minute request and token buckets, what is left, and how long until
 * each is full again. Without an RPM limit the request headers describe the RPD bucket.
 */
export function rateLimitHeaders(buckets: readonly PlannedBucket[], outcome: Pick<AdmitOutcome, 'levels' | 'limits'>): Record<string, string> {
  const headers: Record<string, string> = {};
  let requests = -1;
  let tokens = -1;
  for (let i = 0; i < buckets.length; i++) {
    const kind = (buckets[i] as PlannedBucket).kind;
    if (kind === 'rpm' || (kind === 'rpd' && requests === -1)) requests = i;
    else if (kind === 'tpm') tokens = i;
  }
  if (requests !== -1 && tokens !== -1) {
    // The usual pair (a request bucket and TPM): one literal of constant names, a single shape.
    const r = buckets[requests] as PlannedBucket;
    const t = buckets[tokens] as PlannedBucket;
    const rLimit = outcome.limits?.[requests] ?? r.limit;
    const tLimit = outcome.limits?.[tokens] ?? t.limit;
    const rLevel = outcome.levels[requests] ?? 0;
    const tLevel = outcome.levels[tokens] ?? 0;
    return {
      'x-ratelimit-limit-requests': String(rLimit),
      'x-ratelimit-remaining-requests': remainingText(r, rLevel),
      'x-ratelimit-reset-requests': resetText(r, rLimit, rLevel),
      'x-ratelimit-limit-tokens': String(tLimit),
      'x-ratelimit-remaining-tokens': remainingText(t, tLevel),
      'x-ratelimit-reset-tokens': resetText(t, tLimit, tLevel),
    };
  }
  if (requests !== -1) describe(headers, REQUEST_HEADERS, buckets[requests] as PlannedBucket, outcome.levels[requests] ?? 0, outcome.limits?.[requests]);
  if (tokens !== -1) describe(headers, TOKEN_HEADERS, buckets[tokens] as PlannedBucket, outcome.levels[tokens] ?? 0, outcome.limits?.[tokens]);
  return headers;
}

const REQUEST_HEADERS = ['x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests'] as const;
const TOKEN_HEADERS = ['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens'] as const;

/** One bucket's three headers: its limit, what is left, and how long until it is full again. */
function describe(headers: Record<string, string>, names: readonly [string, string, string], bucket: PlannedBucket, level: number, applied: number | undefined): void {
  const limit = applied ?? bucket.limit;
  headers[names[0]] = String(limit);
  headers[names[1]] = remainingText(bucket, level);
  headers[names[2]] = resetText(bucket, limit, level);
}

/** What is left of a bucket at `level` (units × window ms), in whole units. */
function remainingText(bucket: PlannedBucket, level: number): string {
  return String(Math.max(0, Math.floor(level / bucket.windowMs)));
}

/** How long until a bucket at `level` is full again, as OpenAI writes it. */
function resetText(bucket: PlannedBucket, limit: number, level: number): string {
  return goDuration(Math.ceil((limit * bucket.windowMs - level) / limit));
}
