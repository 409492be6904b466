/**
 * Outlier detection of one upstream, per gateway instance (as Envoy's): consecutive failed
 * attempts, or a failure percentage over an interval once the interval has seen enough attempts,
 * eject it for a cool-down that doubles with each ejection (up to a maximum); when the cool-down
 * is over it is probed, and only a successful probe lets traffic back in.
 */

export interface EjectionPolicy {
  /** 0: never eject. */
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  /** Failed attempts, in percent of the interval's attempts, that eject; 0 (or absent): never. */
  readonly failurePercentage?: number | undefined;
  /** The attempts an interval needs before its failure percentage counts. */
  readonly failurePercentageRequestVolume?: number | undefined;
  /** The length of the interval the failure percentage is counted over (the pool turns it). */
  readonly intervalMs?: number | undefined;
}

export type HealthState = 'healthy' | 'ejected' | 'probing';

export class Health {
  #failures = 0;
  #ejections = 0;
  /** The current interval's attempts and failed attempts (failure-percentage ejection). */
  #attempts = 0;
  #failed = 0;
  readonly #percentage: number;
  readonly #volume: number;
  state: HealthState = 'healthy';

  constructor(private readonly policy: EjectionPolicy) {
    this.#percentage = policy.failurePercentage ?? 0;
    this.#volume = Math.max(1, policy.failurePercentageRequestVolume ?? 1);
  }

  /** A successful attempt (any answer but 5xx): the streak ends. */
  succeeded(): void {
    this.#failures = 0;
    this.#attempts++;
  }

  /** A failed attempt; returns the cool-down when this failure ejects the upstream. */
  failed(): number | undefined {
    this.#failures++;
    this.#attempts++;
    this.#failed++;
    if (this.state !== 'healthy') return undefined;
    if (this.policy.consecutiveFailures > 0 && this.#failures >= this.policy.consecutiveFailures) return this.eject();
    if (this.#percentage > 0 && this.#attempts >= this.#volume && this.#failed * 100 >= this.#percentage * this.#attempts) return this.eject();
    return undefined;
  }

  /** A new interval: the failure percentage counts from nothing again. */
  nextInterval(): void {
    this.#attempts = 0;
    this.#failed = 0;
  }

  /** Eject (again): the cool-down doubles with each ejection since the last recovery. */
  eject(): number {
    this.state = 'ejected';
    this.#failures = 0;
    this.nextInterval();
    const ms = Math.min(this.policy.maxEjectionMs, this.policy.baseEjectionMs * 2 ** this.#ejections);
    this.#ejections++;
    return ms;
  }

  /** A probe succeeded: traffic comes back, the next ejection starts from the base cool-down. */
  recovered(): void {
    this.state = 'healthy';
    this.#failures = 0;
    this.nextInterval();
    this.#ejections = 0;
  }
}
