/**
 * Outlier detection of one upstream, per gateway instance (as Envoy's): consecutive failed
 * attempts eject it for a cool-down that doubles with each ejection (up to a maximum); when the
 * cool-down is over it is probed, and only a successful probe lets traffic back in.
 */

export interface EjectionPolicy {
  /** 0: never eject. */
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
}

export type HealthState = 'healthy' | 'ejected' | 'probing';

export class Health {
  #failures = 0;
  #ejections = 0;
  state: HealthState = 'healthy';

  constructor(private readonly policy: EjectionPolicy) {}

  /** A successful attempt (any answer but 5xx): the streak ends. */
  succeeded(): void {
    this.#failures = 0;
  }

  /** A failed attempt; returns the cool-down when this failure ejects the upstream. */
  failed(): number | undefined {
    this.#failures++;
    if (this.state !== 'healthy' || this.policy.consecutiveFailures === 0 || this.#failures < this.policy.consecutiveFailures) return undefined;
    return this.eject();
  }

  /** Eject (again): the cool-down doubles with each ejection since the last recovery. */
  eject(): number {
    this.state = 'ejected';
    this.#failures = 0;
    const ms = Math.min(this.policy.maxEjectionMs, this.policy.baseEjectionMs * 2 ** this.#ejections);
    this.#ejections++;
    return ms;
  }

  /** A probe succeeded: traffic comes back, the next ejection starts from the base cool-down. */
  recovered(): void {
    this.state = 'healthy';
    this.#failures = 0;
    this.#ejections = 0;
  }
}
