import { createHash, hash, timingSafeEqual } from 'node:crypto';
import type { TierName } from '../config/defaults.js';
import type { KeyEntry } from '../config/schema.js';
import { InvalidApiKeyError, MissingApiKeyError } from '../errors/errors.js';

/** Who is calling: what every later stage needs to know about the client key. Never the secret. */
export interface Caller {
  readonly id: string;
  readonly tier: TierName;
  readonly limits: KeyEntry['limits'];
  /** Wait up to this long for a bucket to refill instead of answering 429. */
  readonly maxWaitMs: number | undefined;
  /** The key's response cache policy; undefined: the cache is off for this key. */
  readonly cache?: CachePolicy | undefined;
}

/** A key's response cache, resolved once from its config entry. */
export interface CachePolicy {
  readonly ttlMs: number;
  readonly maxEntryBytes: number;
  /** Whose entries these are: `key:<id>`, or `group:<name>` for a shared group. Never the secret. */
  readonly scope: string;
}

function cachePolicy(entry: KeyEntry): CachePolicy | undefined {
  const cache = entry.cache;
  if (!cache) return undefined;
  return {
    ttlMs: cache.ttl_s * 1000,
    maxEntryBytes: cache.max_entry_bytes,
    scope: cacheScope(entry),
  };
}

/** Whose response cache entries a key's are: its group's when it names one, else its own (by id, never the secret). */
export function cacheScope(entry: KeyEntry): string {
  const group = entry.cache?.group;
  return group !== undefined ? `group:${group}` : `key:${entry.id}`;
}

export function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** SHA-256 in hex with the one-shot API (no Hash object per request). */
function sha256Hex(secret: string): string {
  return hash('sha256', secret, 'hex');
}

/**
 * Client keys, held only as SHA-256 digests. A lookup hashes the presented secret, finds the entry
 * by digest and confirms it with a constant-time comparison.
 */
export interface KeyStore {
  authenticate(authorization: string | undefined): Caller;
  readonly size: number;
}

interface StoredKey {
  readonly digest: Buffer;
  readonly caller: Caller;
}

export function createKeyStore(entries: readonly KeyEntry[]): KeyStore {
  const byDigest = new Map<string, StoredKey>();
  const ids = new Set<string>();
  for (const entry of entries) {
    if (ids.has(entry.id)) throw new Error(`duplicate key id ${entry.id}`);
    ids.add(entry.id);
    const digest = entry.key !== undefined ? sha256(entry.key) : Buffer.from(entry.key_sha256 ?? '', 'hex');
    const hex = digest.toString('hex');
    if (byDigest.has(hex)) throw new Error(`keys ${byDigest.get(hex)?.caller.id} and ${entry.id} have the same secret`);
    byDigest.set(hex, { digest, caller: { id: entry.id, tier: entry.tier, limits: entry.limits, maxWaitMs: entry.max_wait_ms, cache: cachePolicy(entry) } });
  }
  return {
    size: byDigest.size,
    authenticate(authorization) {
      const presented = bearerToken(authorization);
      if (presented === undefined) throw new MissingApiKeyError();
      const hex = sha256Hex(presented);
      const found = byDigest.get(hex);
      // The lookup is by digest; the confirming comparison runs in constant time.
      if (!found || !timingSafeEqual(found.digest, Buffer.from(hex, 'hex'))) throw new InvalidApiKeyError(presented);
      return found.caller;
    },
  };
}

/** The secret of `Authorization: Bearer <secret>`, or undefined when none was presented. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*Bearer\s+(.*?)\s*$/i.exec(header);
  const token = match?.[1];
  return token === undefined || token.length === 0 ? undefined : token;
}
