// Issue 15, item 6: fair share of a contended upstream ceiling. The acceptance figures on the
// process-memory store with an injected clock: a real minute of a real 100k TPM ceiling, simulated
// millisecond by millisecond (the same arithmetic as lua/fair-share.lua, which the contract test
// holds to it against a real Redis).
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import type { BucketCall, ShareClaim, SharedCall, SharedOutcome, LimiterStore } from '../../src/limits/store.js';

const MINUTE = 60_000;
const TPM = 100_000;
// The defaults of limits.fair_share.
const SETTINGS = { activeMs: 3_000, burstMs: 60_000 };
const A: ShareClaim = { entity: 'key:a', weight: 3, priority: 0 };
const B: ShareClaim = { entity: 'key:b', weight: 1, priority: 0 };

function harness() {
  let now = 1_000_000;
  const store = createMemoryStore(() => now) as LimiterStore & Required<Pick<LimiterStore, 'admitShared' | 'settleShared'>>;
  const bucket = (units: number): BucketCall => ({ key: 'p{up|u|m}:tpm', limit: TPM, windowMs: MINUTE, units });
  const call = (claim: ShareClaim, units: number, waits = 0): SharedCall => ({ buckets: [bucket(units)], stateKey: 'p{up|u|m}:share', claim, settings: SETTINGS, maxWaitMs: waits });
  return {
    store,
    call,
    advance: (ms: number) => (now += ms),
    now: () => now,
  };
}

/**
 * Clients that saturate the ceiling: each sends a request of `cost` tokens, and after a refusal
 * waits the advertised time before sending again (as the SDK's retry-after or max_wait_ms would).
 */
function simulate(h: ReturnType<typeof harness>, clients: { claim: ShareClaim; until: number }[], from: number, to: number, cost = 1_000) {
  const next = clients.map(() => h.now());
  const admitted = clients.map(() => [] as { at: number; tokens: number }[]);
  while (h.now() < to) {
    clients.forEach((client, i) => {
      if (h.now() >= client.until || h.now() < (next[i] as number)) return;
      const outcome = h.store.admitShared(h.call(client.claim, cost)) as { allowed: boolean; waitMs: number };
      if (outcome.allowed) {
        (admitted[i] as { at: number; tokens: number }[]).push({ at: h.now(), tokens: cost });
        next[i] = h.now();
      } else next[i] = h.now() + Math.max(1, outcome.waitMs);
    });
    h.advance(1);
  }
  return (i: number, start = from, end = to) => (admitted[i] as { at: number; tokens: number }[]).filter((a) => a.at >= start && a.at < end).reduce((sum, a) => sum + a.tokens, 0);
}

describe('fair share of one ceiling (process memory, simulated clock)', () => {
  it('two keys with weights 3 and 1 saturating 100k TPM get 75% / 25% over a minute; when one stops, the other has ≥ 95% within 10 s', () => {
    const h = harness();
    const t0 = h.now();
    // The ceiling starts full (its 100k burst); measured from the first minute of saturation on.
    const tokens = simulate(h, [{ claim: A, until: t0 + 150_000 }, { claim: B, until: Infinity }], t0, t0 + 170_000);
    const start = t0 + 30_000;
    const a = tokens(0, start, start + MINUTE);
    const b = tokens(1, start, start + MINUTE);
    expect(a + b).toBeGreaterThanOrEqual(TPM * 0.98);
    expect(a + b).toBeLessThanOrEqual(TPM + 1_000);
    expect(a / (a + b)).toBeGreaterThanOrEqual(0.7);
    expect(a / (a + b)).toBeLessThanOrEqual(0.8);
    // A stops at t0 + 150 s: over the 10 s that follow, B's rate reaches ≥ 95% of the ceiling
    // (its last 5 s are all B's), and B alone never passes the ceiling.
    const stop = t0 + 150_000;
    const late = tokens(1, stop + 5_000, stop + 10_000);
    expect(late).toBeGreaterThanOrEqual((TPM / 12) * 0.95);
    expect(tokens(1, stop + 10_000, stop + 20_000)).toBeGreaterThanOrEqual((TPM / 6) * 0.95);
    // And the whole run never admitted more than the ceiling allows: its burst plus its rate.
    expect(tokens(0, t0, t0 + 170_000) + tokens(1, t0, t0 + 170_000)).toBeLessThanOrEqual(TPM + (TPM * 170_000) / MINUTE + 1_000);
  });

  it('a key alone borrows the whole ceiling; an idle share is lent, a guarantee is kept for its owner', () => {
    const h = harness();
    // B alone takes the full burst.
    let admitted = 0;
    while ((h.store.admitShared(h.call(B, 1_000)) as { allowed: boolean }).allowed) admitted += 1_000;
    expect(admitted).toBe(TPM);
    // A arrives, is active, and earns its guarantee at 75k/min while B keeps asking.
    expect((h.store.admitShared(h.call(A, 1_000)) as { allowed: boolean }).allowed).toBe(false);
    const tokens = simulate(h, [{ claim: A, until: Infinity }, { claim: B, until: Infinity }], h.now(), h.now() + MINUTE);
    const a = tokens(0);
    const b = tokens(1);
    expect(a / (a + b)).toBeGreaterThanOrEqual(0.7);
    expect(a / (a + b)).toBeLessThanOrEqual(0.8);
  });

  it('an active key’s unused guarantee is not lent: a request that needs it waits, and its 429 says what is there for it', () => {
    const h = harness();
    // B is active and holds its guarantee: 14 s of its requests' refill (about 20.8k tokens).
    for (let i = 0; i < 7; i++) {
      expect(h.store.admitShared(h.call(B, 1))).toMatchObject({ allowed: true });
      h.advance(2_000);
    }
    const refused = h.store.admitShared(h.call(A, 85_000)) as SharedOutcome;
    expect(refused.allowed).toBe(false);
    const left = Math.floor((refused.levels[0] as number) / MINUTE);
    expect(left).toBeLessThan(85_000);
    expect(left).toBeGreaterThan(75_000);
    // Up to what B does not hold, A borrows.
    expect(h.store.admitShared(h.call(A, 75_000))).toMatchObject({ allowed: true, borrowed: true });
  });

  it('a settlement gives the unused tokens back to the ceiling and to the entity’s guarantee', () => {
    const h = harness();
    simulate(h, [{ claim: A, until: Infinity }, { claim: B, until: Infinity }], h.now(), h.now() + 30_000);
    // Both drained: A's next request is refused, until B's settlement returns what it did not use.
    const before = h.store.admitShared(h.call(B, 3_000)) as { allowed: boolean };
    expect(before.allowed).toBe(false);
    h.store.settleShared(h.call(B, 3_000));
    const after = h.store.admitShared(h.call(B, 3_000)) as { allowed: boolean; borrowed: boolean };
    expect(after).toMatchObject({ allowed: true, borrowed: false });
  });

  it('tokens used beyond the reservation are repaid from the entity’s own share, not from the others’', () => {
    const h = harness();
    simulate(h, [{ claim: A, until: Infinity }, { claim: B, until: Infinity }], h.now(), h.now() + 30_000);
    // B's answer used 10k tokens more than it reserved: the ceiling and B's guarantee take them.
    h.store.settleShared(h.call(B, -10_000));
    const from = h.now();
    const tokens = simulate(h, [{ claim: A, until: Infinity }, { claim: B, until: Infinity }], from, from + 30_000);
    // 30 s of the ceiling is 50k tokens, 10k of them gone to B's debt: A keeps its 37.5k, B gets 2.5k.
    expect(tokens(0)).toBeGreaterThanOrEqual(36_000);
    expect(tokens(1)).toBeLessThanOrEqual(4_000);
  });

  it('a waiting request of a higher priority in a group goes before the group’s lower ones', () => {
    const h = harness();
    const low: ShareClaim = { entity: 'group:team', weight: 1, priority: 0 };
    const high: ShareClaim = { entity: 'group:team', weight: 1, priority: 5 };
    while ((h.store.admitShared(h.call(low, 1_000)) as { allowed: boolean }).allowed);
    const refused = h.store.admitShared(h.call(high, 1_000, 10_000)) as { allowed: boolean; waitMs: number };
    expect(refused.allowed).toBe(false);
    // The room the high-priority request waits for is not taken by the low one meanwhile.
    h.advance(refused.waitMs);
    const lowTries = h.store.admitShared(h.call(low, 1_000)) as { allowed: boolean; waitMs: number };
    expect(lowTries.allowed).toBe(false);
    expect(h.store.admitShared(h.call(high, 1_000, 10_000))).toMatchObject({ allowed: true });
    // Once it is served, the marker is gone: the low one is admitted when there is room again.
    h.advance(1_000);
    expect(h.store.admitShared(h.call(low, 1_000))).toMatchObject({ allowed: true });
  });
});
