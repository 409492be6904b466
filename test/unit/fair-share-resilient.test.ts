// A shared ceiling when Redis fails (limits.on_redis_error): fail_closed refuses with the limiter's
// 503; fail_open shares this instance's part of the ceiling in process memory (the limit divided by
// limits.instances), settles there, and goes back to Redis once it answers again.
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../src/limits/memory-store.js';
import { createResilientStore, LimiterUnavailableError } from '../../src/limits/resilient-store.js';
import type { LimiterStore, ShareClaim, SharedCall } from '../../src/limits/store.js';

const MINUTE = 60_000;
const claim: ShareClaim = { entity: 'key:a', weight: 1, priority: 0 };
const call = (units: number): SharedCall => ({
  buckets: [{ key: 'p{up|u|m}:tpm', limit: 1_000, windowMs: MINUTE, units }],
  stateKey: 'p{up|u|m}:share',
  claim,
  settings: { activeMs: 3_000, burstMs: 10_000 },
});

/** A primary that fails while `down` is set (as a Redis timeout would), and is a memory store otherwise. */
function flaky() {
  const inner = createMemoryStore();
  const state = { down: true };
  const fail = () => Promise.reject(new Error('Command timed out'));
  const store: LimiterStore = {
    admit: (b, c) => (state.down ? fail() : inner.admit(b, c)),
    settle: (b, c, d, id) => (state.down ? fail() : inner.settle(b, c, d, id)),
    admitShared: (c) => (state.down ? fail() : (inner.admitShared as NonNullable<LimiterStore['admitShared']>)(c)),
    settleShared: (c) => (state.down ? fail() : (inner.settleShared as NonNullable<LimiterStore['settleShared']>)(c)),
    read: (k) => inner.read(k),
    close: () => inner.close(),
  };
  return { store, state, inner };
}

describe('a shared ceiling when Redis fails', () => {
  it('fail_closed: the limiter’s 503', async () => {
    const { store } = flaky();
    const resilient = createResilientStore({ primary: store, fallback: createMemoryStore(), mode: 'fail_closed', instances: 2, onSwitch: () => {}, onError: () => {} });
    await expect(resilient.admitShared?.(call(10))).rejects.toBeInstanceOf(LimiterUnavailableError);
  });

  it('fail_open: this instance’s part of the ceiling, settled locally, and Redis again once it answers', async () => {
    const { store, state, inner } = flaky();
    const switches: boolean[] = [];
    const resilient = createResilientStore({
      primary: store,
      fallback: createMemoryStore(),
      mode: 'fail_open',
      instances: 2,
      probeAfterMs: 1,
      onSwitch: (e) => switches.push(e.degraded),
      onError: () => {},
    });
    const admitShared = resilient.admitShared as NonNullable<LimiterStore['admitShared']>;
    // Half of 1,000 tokens per minute on this instance.
    const held = await admitShared(call(500));
    expect(held).toMatchObject({ allowed: true, limits: [500] });
    expect((await admitShared(call(1))).allowed).toBe(false);
    // Its settlement goes where it was admitted: the local bucket gets its 400 unused tokens back.
    await held.settleSharedVia?.({ ...call(400) });
    expect((await admitShared(call(400))).allowed).toBe(true);
    // Redis answers again: the shared ceiling is Redis's.
    state.down = false;
    await new Promise((r) => setTimeout(r, 5));
    const back = await admitShared(call(900));
    expect(back).toMatchObject({ allowed: true });
    expect(back.limits).toBeUndefined();
    expect(switches).toEqual([true, false]);
    await inner.close();
  });
});
