import { hash, timingSafeEqual } from 'node:crypto';
import { bearerToken, sha256, type Caller } from '../auth/keys.js';
import { isLocalRequest, isPublicSecret, type RequestPeer } from '../auth/public-secrets.js';
import type { Catalogue } from '../config/catalogue.js';
import type { KeyEntry } from '../config/schema.js';
import { InvalidApiKeyError, KeyDisabledError, KeyExpiredError, KeyStoreUnavailableError, MissingApiKeyError, PublicKeyRemoteError } from '../errors/errors.js';
import type { KeyBackend, StoredKey } from './backend.js';
import { callerFromPolicy } from './caller.js';

/**
 * Every client key the gateway accepts: the config file's (static, built once) and those created
 * through the admin API (held by a KeyBackend, cached here). All are held only as SHA-256 digests: a
 * lookup hashes the presented secret, finds the key by digest and confirms it in constant time.
 *
 * Hot path: a static key, or a run-time key cached less than `cacheTtlMs` ago, authenticates with
 * one SHA-256 and Map lookups, synchronously. Only a cache miss or an expired entry asks the backend.
 */
export interface KeyStore {
  /**
   * The caller of `Authorization: Bearer <secret>`. `peer` is where the request came from: a key
   * with a published secret (the demo key) is accepted only from the gateway's own machine.
   */
  authenticate(authorization: string | undefined, peer?: RequestPeer): Caller | Promise<Caller>;
  /** Ids of the static keys whose secret is published (accepted from this machine only). */
  readonly publicKeyIds: readonly string[];
  /** Number of static keys. */
  readonly size: number;
  /** A static key's entry by id. */
  staticEntry(id: string): KeyEntry | undefined;
  readonly staticEntries: readonly KeyEntry[];
  /** The Caller of a run-time record (what authentication would return for it). */
  callerOf(record: StoredKey): Caller;
  /** Forget what is cached about a key (undefined: about every key). */
  invalidate(id: string | undefined): void;
}

export interface KeyStoreOptions {
  readonly catalogue?: Catalogue | undefined;
  /** Run-time keys; without it only static keys authenticate. */
  readonly backend?: KeyBackend | undefined;
  readonly cacheTtlMs?: number | undefined;
  readonly clock?: (() => number) | undefined;
  /** A backend lookup failed (the stale cached key, if any, was used). */
  readonly onBackendError?: ((error: unknown) => void) | undefined;
}

interface CachedKey {
  /** undefined: no live key has this digest (a cached refusal). */
  readonly caller: Caller | undefined;
  readonly digest: Buffer;
  fetchedAt: number;
}

/** Cached refusals are bounded: a flood of random secrets cannot grow the cache without limit. */
const MAX_CACHED_REFUSALS = 10_000;

export function createKeyStore(entries: readonly KeyEntry[], options: KeyStoreOptions = {}): KeyStore {
  const { catalogue, backend } = options;
  const clock = options.clock ?? Date.now;
  const ttl = options.cacheTtlMs ?? 5_000;
  const byDigest = new Map<string, { digest: Buffer; caller: Caller; published: boolean }>();
  const byId = new Map<string, KeyEntry>();
  for (const entry of entries) {
    if (byId.has(entry.id)) throw new Error(`duplicate key id ${entry.id}`);
    byId.set(entry.id, entry);
    const digest = entry.key !== undefined ? sha256(entry.key) : Buffer.from(entry.key_sha256 ?? '', 'hex');
    const hex = digest.toString('hex');
    if (byDigest.has(hex)) throw new Error(`keys ${byDigest.get(hex)?.caller.id} and ${entry.id} have the same secret`);
    byDigest.set(hex, { digest, caller: callerFromPolicy(entry.id, entry, catalogue), published: isPublicSecret(hex) });
  }

  const cache = new Map<string, CachedKey>();
  let refusals = 0;
  const inflight = new Map<string, Promise<CachedKey>>();
  const callerOf = (record: StoredKey): Caller => callerFromPolicy(record.id, record, catalogue);

  // Bumped by every invalidation: a lookup that started before one must not be trusted after it.
  let generation = 0;
  const remember = (hex: string, record: StoredKey | undefined, askedAt: number): CachedKey => {
    // A run-time record whose id the config file now uses is shadowed by the static key.
    const live = record && !record.revoked_at && !byId.has(record.id) ? record : undefined;
    const fetchedAt = askedAt === generation ? clock() : -Infinity;
    const entry: CachedKey = { caller: live && callerOf(live), digest: Buffer.from(hex, 'hex'), fetchedAt };
    const before = cache.get(hex);
    if (before && !before.caller) refusals--;
    if (!entry.caller) {
      if (refusals >= MAX_CACHED_REFUSALS) forgetRefusals();
      refusals++;
    }
    cache.set(hex, entry);
    return entry;
  };
  const forgetRefusals = (): void => {
    for (const [hex, entry] of cache) if (!entry.caller) cache.delete(hex);
    refusals = 0;
  };

  const fetch = (hex: string, stale: CachedKey | undefined, kb: KeyBackend): Promise<CachedKey> => {
    let pending = inflight.get(hex);
    if (!pending) {
      const askedAt = generation;
      pending = kb.byDigest(hex).then(
        (record) => remember(hex, record, askedAt),
        (error: unknown) => {
          options.onBackendError?.(error);
          // The backend is unreachable: a key cached before keeps working (its last known state).
          if (stale) return stale;
          throw new KeyStoreUnavailableError();
        },
      );
      const done = pending.finally(() => inflight.delete(hex));
      void done.catch(() => undefined);
      inflight.set(hex, pending);
    }
    return pending;
  };

  const admitted = (caller: Caller, presented: string): Caller => {
    if (caller.disabled) throw new KeyDisabledError(presented);
    if (caller.expiresAtMs !== undefined && clock() >= caller.expiresAtMs) {
      throw new KeyExpiredError(presented, new Date(caller.expiresAtMs).toISOString());
    }
    return caller;
  };
  const confirmed = (entry: CachedKey, hex: string, presented: string): Caller => {
    // The lookup is by digest; the confirming comparison runs in constant time.
    if (!entry.caller || !timingSafeEqual(entry.digest, Buffer.from(hex, 'hex'))) throw new InvalidApiKeyError(presented);
    return admitted(entry.caller, presented);
  };

  return {
    size: byDigest.size,
    publicKeyIds: [...byDigest.values()].filter((key) => key.published).map((key) => key.caller.id),
    staticEntries: entries,
    staticEntry: (id) => byId.get(id),
    callerOf,
    authenticate(authorization, peer) {
      const presented = bearerToken(authorization);
      if (presented === undefined) throw new MissingApiKeyError();
      const hex = hash('sha256', presented, 'hex');
      const found = byDigest.get(hex);
      if (found) {
        if (!timingSafeEqual(found.digest, Buffer.from(hex, 'hex'))) throw new InvalidApiKeyError(presented);
        if (found.published && !isLocalRequest(peer)) throw new PublicKeyRemoteError(presented);
        return found.caller.disabled || found.caller.expiresAtMs !== undefined ? admitted(found.caller, presented) : found.caller;
      }
      if (!backend) throw new InvalidApiKeyError(presented);
      const cached = cache.get(hex);
      if (cached && clock() - cached.fetchedAt < ttl) return confirmed(cached, hex, presented);
      return fetch(hex, cached, backend).then((entry) => confirmed(entry, hex, presented));
    },
    invalidate(id) {
      generation++;
      if (id === undefined) {
        // Keep the entries (they still serve if the backend is down), but ask again on next use.
        for (const entry of cache.values()) entry.fetchedAt = -Infinity;
        return;
      }
      for (const [hex, entry] of cache) if (entry.caller?.id === id) cache.delete(hex);
      // A key created or rotated may have a digest this instance refused a moment ago.
      forgetRefusals();
    },
  };
}
