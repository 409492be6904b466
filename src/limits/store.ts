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

export interface AdmitOutcome {
  readonly allowed: boolean;
  /** Index of the bucket that refused (the one with the longest wait), -1 if allowed. */
  readonly refusing: number;
  /** When refused: milliseconds until the refusing bucket has room for the cost. */
  readonly waitMs: number;
  /** Level of each bucket, in unit-milliseconds (units × window), after the call. */
  readonly levels: readonly number[];
  /** The limits the store applied, when they differ from the ones asked for (fail-open divides them). */
  readonly limits?: readonly number[];
  /** Where this admission's settlement must go when it was not the store called (fallback). */
  readonly settleVia?: (calls: readonly BucketCall[]) => void | Promise<void>;
}

/**
 * A store answers at once when it can (process memory) and with a promise when it must ask
 * (Redis): the limiter keeps the synchronous path free of promises.
 */
export interface LimiterStore {
  admit(buckets: readonly BucketCall[]): AdmitOutcome | Promise<AdmitOutcome>;
  /** Returns the levels after settlement. */
  settle(buckets: readonly BucketCall[]): readonly number[] | Promise<readonly number[]>;
  close(): Promise<void>;
}
