import { randomBytes } from 'node:crypto';

/**
 * The storage contract of the limiter: atomic multi-bucket admission and settlement over
 * continuously refilling token buckets. Two implementations: Redis (shared by every gateway
 * instance) and process memory (one instance). One contract test suite runs against both.
 */

/** One bucket of one request: its identity, its figures, and what this request costs it. */
export interface BucketCall {
  /** Storage key; every bucket of one call shares a hash tag. */
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
  /** Units to take (admit) or to return, negative to take more (settle). */
  readonly units: number;
}

/**
 * One field of a usage hash (a key's spend or tokens in one calendar window): checked against its
 * cap at admission, when it has one, and increased by `units` (admission and settlement alike).
 */
export interface CounterCall {
  /** Storage key of the hash; shares the hash tag of the call's buckets. */
  readonly key: string;
  readonly field: string;
  /** Refuse when the field would pass this; undefined: count only. */
  readonly cap?: number | undefined;
  /** What to add (negative on settlement when less was used than reserved). */
  readonly units: number;
  /** Expiry of the hash, renewed on every write, in ms; 0 or undefined: never. */
  readonly ttlMs?: number | undefined;
}

export interface AdmitOutcome {
  readonly allowed: boolean;
  /**
   * Index of what refused, -1 if allowed: a bucket (the one with the longest wait), or, at
   * `buckets.length + j`, counter j (a counter refuses before any bucket: waiting cannot help it).
   */
  readonly refusing: number;
  /** When refused: milliseconds until the refusing bucket has room for the cost. */
  readonly waitMs: number;
  /** Level of each bucket, in unit-milliseconds (units × window), after the call. */
  readonly levels: readonly number[];
  /** Value of each counter after the call (as found when refused). */
  readonly values?: readonly number[];
  /** The limits the store applied, when they differ from the ones asked for (fail-open divides them). */
  readonly limits?: readonly number[];
  /** Where this admission's settlement must go when it was not the store called (fallback). */
  readonly settleVia?: (calls: readonly BucketCall[], counters?: readonly CounterCall[]) => void | Promise<void>;
}

/** Who takes a shared ceiling: an entity (a key, or a group of keys), its weight and priority. */
export interface ShareClaim {
  /** `key:<id>` or `group:<name>`: whose share a request counts against. */
  readonly entity: string;
  /** The entity's weight among the active ones (a positive integer). */
  readonly weight: number;
  /** Higher first within the entity's share (a non-negative integer). */
  readonly priority: number;
}

/** How a ceiling is shared: the activity window and the most of its share an entity may hold unused. */
export interface ShareSettings {
  readonly activeMs: number;
  readonly burstMs: number;
}

/**
 * One request against a shared ceiling (lua/fair-share.lua): the ceiling's buckets (the same
 * storage as plain buckets), the state hash of its entities under the same hash tag, and the claim.
 */
export interface SharedCall {
  readonly buckets: readonly BucketCall[];
  readonly stateKey: string;
  readonly claim: ShareClaim;
  readonly settings: ShareSettings;
  /**
   * How long the request may still wait when refused (what is left of max_wait_ms; 0 or undefined:
   * it does not wait). A refusal it will wait out keeps its entity active, and leaves a priority
   * marker when its priority is above 0.
   */
  readonly maxWaitMs?: number | undefined;
}

export interface SharedOutcome extends AdmitOutcome {
  /** Admitted beyond the entity's own guarantee, from what the other active entities left. */
  readonly borrowed: boolean;
  /** Where this admission's settlement must go when it was not the store called (fallback). */
  readonly settleSharedVia?: (call: SharedCall) => void | Promise<unknown>;
}

/**
 * A store answers at once when it can (process memory) and with a promise when it must ask
 * (Redis): the limiter keeps the synchronous path free of promises.
 */
export interface LimiterStore {
  /** Buckets and counters of one call share one hash tag. */
  admit(buckets: readonly BucketCall[], counters?: readonly CounterCall[]): AdmitOutcome | Promise<AdmitOutcome>;
  /**
   * Returns the levels after settlement, then the counters' values. `deferrable`: the caller does
   * not wait for the answer (a request's settlement), so a store may hold it briefly to travel with
   * its next call (Redis: up to SETTLE_DELAY_MS, sent at once by `read` and `close`).
   * `id`: the settlement's idempotency id (`settlementId()`): Redis applies it at most once, so
   * writing it again after a failure whose outcome is unknown neither loses nor doubles it. A
   * failed write of counters rejects with an UnsettledError naming what to write again.
   */
  settle(buckets: readonly BucketCall[], counters?: readonly CounterCall[], deferrable?: boolean, id?: string): readonly number[] | Promise<readonly number[]>;
  /**
   * A shared ceiling (fair share): admit against the buckets and the entities' guarantees in one
   * atomic step. Optional: a store without it has no fair share (the ceiling is then plain).
   */
  admitShared?(call: SharedCall): SharedOutcome | Promise<SharedOutcome>;
  /** Give back (positive units) or take more (negative) of an admission on a shared ceiling, and of its entity's guarantee. */
  settleShared?(call: SharedCall): readonly number[] | Promise<readonly number[]>;
  /** The fields of usage hashes (missing hashes read as empty), for reports. */
  read(keys: readonly string[]): Promise<Record<string, number>[]>;
  close(): Promise<void>;
}

/** `prefix{tag}:kind` → `tag`: calls on one tag share a Cluster slot, so they can share a script call. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * A settlement's counters may or may not have reached the store (the connection dropped or timed
 * out after the call was written). Writing `counters` again with `id` is safe either way: the store
 * applies a settlement id once.
 */
export class UnsettledError extends Error {
  constructor(
    readonly reason: unknown,
    readonly id: string,
    readonly counters: readonly CounterCall[],
  ) {
    super(reason instanceof Error ? reason.message : 'settlement failed');
    this.name = 'UnsettledError';
  }
}

const SETTLEMENT_PREFIX = `${randomBytes(6).toString('base64url')}.`;
let settlements = 0;

/** A settlement id unique across instances and restarts: a random stem per process, then a counter. */
export function settlementId(): string {
  return SETTLEMENT_PREFIX + (settlements++).toString(36);
}
