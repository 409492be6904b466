// The key store with run-time keys (issue 5, point 1) on a manual clock: static keys stay synchronous
// (no backend call), run-time keys are looked up once and cached for cache_ttl_ms, invalidation
// drops them at once, and a backend that fails leaves cached keys working (their last known
// state) while an uncached key gets a 503 instead of a misleading 401.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Caller } from '../../src/auth/keys.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { InvalidApiKeyError, KeyDisabledError, KeyExpiredError, KeyStoreUnavailableError } from '../../src/errors/errors.js';
import { createMemoryKeyBackend, type KeyBackend, type StoredKey } from '../../src/keys/backend.js';
import { createKeyStore } from '../../src/keys/registry.js';

const catalogue = buildCatalogue(configFromObject({}));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const STATIC = 'tg-static-key-store-0123456789';
const DYNAMIC = 'tg-dynamic-key-store-0123456789';

function record(id: string, secret: string, extra: Partial<StoredKey> = {}): StoredKey {
  return { id, tier: 'tier-1', sha256: sha(secret), key_hint: 'tg-…6789', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', ...extra };
}

/** A memory backend that counts lookups and can be made to fail. */
function countingBackend(): KeyBackend & { lookups: number; failing: boolean } {
  const inner = createMemoryKeyBackend();
  const backend = {
    ...inner,
    lookups: 0,
    failing: false,
    async byDigest(hex: string) {
      backend.lookups++;
      if (backend.failing) throw new Error('redis down');
      return inner.byDigest(hex);
    },
  };
  return backend;
}

function rig(ttl = 5000) {
  let now = Date.parse('2026-06-01T12:00:00Z');
  const backend = countingBackend();
  const errors: unknown[] = [];
  const config = configFromObject({ keys: [{ id: 'static-app', key: STATIC, tier: 'tier-2', expires_at: '2026-06-01T13:00:00Z' }] });
  const keys = createKeyStore(config.keys, { catalogue, backend, cacheTtlMs: ttl, clock: () => now, onBackendError: (e) => errors.push(e) });
  return { keys, backend, errors, advance: (ms: number) => (now += ms) };
}

const bearer = (secret: string) => `Bearer ${secret}`;

async function rejection(value: Caller | Promise<Caller> | (() => Caller | Promise<Caller>)): Promise<unknown> {
  try {
    await (typeof value === 'function' ? value() : value);
  } catch (err) {
    return err;
  }
  throw new Error('expected a refusal');
}

describe('key store: static and run-time keys', () => {
  it('a static key authenticates synchronously without asking the backend', () => {
    const { keys, backend } = rig();
    const caller = keys.authenticate(bearer(STATIC));
    expect(caller).not.toBeInstanceOf(Promise);
    expect((caller as Caller).id).toBe('static-app');
    expect(backend.lookups).toBe(0);
  });

  it('a run-time key is looked up once, then served from the cache (synchronously) until the TTL', async () => {
    const { keys, backend, advance } = rig(5000);
    await backend.put(undefined, record('dyn', DYNAMIC), sha(DYNAMIC));
    const first = keys.authenticate(bearer(DYNAMIC));
    expect(first).toBeInstanceOf(Promise);
    expect((await first).id).toBe('dyn');
    const again = keys.authenticate(bearer(DYNAMIC));
    expect(again).not.toBeInstanceOf(Promise);
    expect(backend.lookups).toBe(1);
    advance(5000);
    expect(await keys.authenticate(bearer(DYNAMIC))).toMatchObject({ id: 'dyn' });
    expect(backend.lookups).toBe(2);
  });

  it('an unknown secret is refused (and the refusal cached); concurrent lookups of one digest share one backend call', async () => {
    const { keys, backend } = rig();
    const results = await Promise.allSettled([1, 2, 3].map(() => keys.authenticate(bearer('tg-nobody-0123456789'))));
    expect(results.filter((r) => !(r.status === 'rejected' && r.reason instanceof InvalidApiKeyError))).toEqual([]);
    expect(backend.lookups).toBe(1);
    expect(await rejection(() => keys.authenticate(bearer('tg-nobody-0123456789')))).toBeInstanceOf(InvalidApiKeyError);
    expect(backend.lookups).toBe(1);
  });

  it('invalidate(id) drops the cached key and cached refusals at once: a change is seen on the next request', async () => {
    const { keys, backend } = rig(600_000);
    // Refused before it exists, and that refusal cached…
    expect(await rejection(() => keys.authenticate(bearer(DYNAMIC)))).toBeInstanceOf(InvalidApiKeyError);
    await backend.put(undefined, record('dyn', DYNAMIC), sha(DYNAMIC));
    keys.invalidate('dyn');
    // …but a creation announces itself.
    expect(await keys.authenticate(bearer(DYNAMIC))).toMatchObject({ id: 'dyn' });
    const current = (await backend.get('dyn')) as StoredKey;
    await backend.put(current, { ...current, revoked_at: '2026-06-01T12:00:01Z' }, undefined);
    // Still cached (TTL 10 min) until told.
    expect(keys.authenticate(bearer(DYNAMIC))).toMatchObject({ id: 'dyn' });
    keys.invalidate('dyn');
    expect(await rejection(() => keys.authenticate(bearer(DYNAMIC)))).toBeInstanceOf(InvalidApiKeyError);
  });

  it('a lookup that started before an invalidation is not trusted after it', async () => {
    const { keys, backend } = rig(600_000);
    await backend.put(undefined, record('dyn', DYNAMIC), sha(DYNAMIC));
    const pending = keys.authenticate(bearer(DYNAMIC));
    keys.invalidate('dyn');
    await pending;
    const current = (await backend.get('dyn')) as StoredKey;
    await backend.put(current, { ...current, disabled: true }, sha(DYNAMIC));
    expect(await rejection(() => keys.authenticate(bearer(DYNAMIC)))).toBeInstanceOf(KeyDisabledError);
  });

  it('the backend down: a cached key keeps working past its TTL, an uncached one gets 503', async () => {
    const { keys, backend, errors, advance } = rig(5000);
    await backend.put(undefined, record('dyn', DYNAMIC), sha(DYNAMIC));
    await keys.authenticate(bearer(DYNAMIC));
    backend.failing = true;
    advance(60_000);
    expect(await keys.authenticate(bearer(DYNAMIC))).toMatchObject({ id: 'dyn' });
    const unknown = await rejection(() => keys.authenticate(bearer('tg-never-seen-0123456789')));
    expect(unknown).toBeInstanceOf(KeyStoreUnavailableError);
    expect((unknown as KeyStoreUnavailableError).status).toBe(503);
    expect(errors.length).toBeGreaterThanOrEqual(2);
    // Static keys never needed the backend.
    expect((keys.authenticate(bearer(STATIC)) as Caller).id).toBe('static-app');
    backend.failing = false;
    keys.invalidate(undefined);
    expect(await keys.authenticate(bearer(DYNAMIC))).toMatchObject({ id: 'dyn' });
  });

  it('expiry is checked on every request against the clock, for static and run-time keys', async () => {
    const { keys, backend, advance } = rig(86_400_000);
    await backend.put(undefined, record('dyn', DYNAMIC, { expires_at: '2026-06-01T12:30:00Z' }), sha(DYNAMIC));
    await keys.authenticate(bearer(DYNAMIC));
    advance(30 * 60_000 - 1);
    expect(keys.authenticate(bearer(DYNAMIC))).toMatchObject({ id: 'dyn' });
    advance(1);
    const expired = await rejection(() => keys.authenticate(bearer(DYNAMIC)));
    expect(expired).toBeInstanceOf(KeyExpiredError);
    expect((expired as KeyExpiredError).message).toContain('expired at 2026-06-01T12:30:00.000Z');
    advance(30 * 60_000);
    expect(await rejection(() => keys.authenticate(bearer(STATIC)))).toBeInstanceOf(KeyExpiredError);
  });

  it('a run-time key whose id the config file uses is shadowed by the static key', async () => {
    const { keys, backend } = rig();
    await backend.put(undefined, record('static-app', DYNAMIC), sha(DYNAMIC));
    expect(await rejection(() => keys.authenticate(bearer(DYNAMIC)))).toBeInstanceOf(InvalidApiKeyError);
  });

  it('the Caller carries the policy in integer units: nano-dollar budgets, canonical model names', async () => {
    const { keys, backend } = rig();
    await backend.put(
      undefined,
      record('dyn', DYNAMIC, {
        budget_usd: { daily: 1.25, monthly: null },
        token_quota: { monthly: 1000 },
        models: ['gpt-4.1-nano-2025-04-14'],
        limits: { models: { 'gpt-4.1-nano-2025-04-14': { rpm: 5 } } },
      }),
      sha(DYNAMIC),
    );
    const caller = await keys.authenticate(bearer(DYNAMIC));
    expect(caller.quota).toEqual({ budgetNano: { daily: 1_250_000_000, monthly: undefined, total: undefined }, tokens: { daily: undefined, monthly: 1000 } });
    expect([...(caller.models ?? [])]).toEqual(['gpt-4.1-nano']);
    expect(caller.limits?.models).toEqual({ 'gpt-4.1-nano': { rpm: 5 } });
    expect(JSON.stringify(caller)).not.toContain(sha(DYNAMIC));
  });
});
