import type { KeyPolicy } from '../config/key-policy.js';

/**
 * A key created through the admin API, as the key store keeps it: the policy, the SHA-256 of the
 * secret (never the secret), a hint to recognise it by, and its history.
 */
export interface StoredKey extends KeyPolicy {
  readonly id: string;
  /** SHA-256 of the secret, hex. */
  readonly sha256: string;
  /** The secret's prefix and last four characters, e.g. `tg-…x7Qa`: enough to tell keys apart, never to use one. */
  readonly key_hint: string;
  readonly created_at: string;
  readonly updated_at: string;
  readonly revoked_at?: string | undefined;
}

/**
 * Where run-time keys live: Redis (shared by every instance) or process memory (one instance; gone
 * on restart). Writes are compare-and-set on the whole record, so two admins changing one key at
 * once cannot lose an update.
 */
export interface KeyBackend {
  get(id: string): Promise<StoredKey | undefined>;
  /** The live (not revoked) key whose secret has this SHA-256. */
  byDigest(sha256Hex: string): Promise<StoredKey | undefined>;
  list(): Promise<StoredKey[]>;
  /**
   * Write `next` if the stored record is still `expected` (undefined: no record with this id yet).
   * The digest index follows: `liveDigest` maps to the id afterwards (undefined: none, as for a
   * revoked key) and `expected`'s digest no longer does. Resolves false when the record changed.
   */
  put(expected: StoredKey | undefined, next: StoredKey, liveDigest: string | undefined): Promise<boolean>;
  /** Tell every instance that a key changed. */
  publish(id: string): Promise<void>;
  /** Hear about changes; `undefined`: anything may have changed (the subscription was re-established). */
  subscribe(listener: (id: string | undefined) => void): Promise<void>;
  close(): Promise<void>;
}

/** Records are compared and stored as their JSON text. */
export function encodeKey(key: StoredKey): string {
  return JSON.stringify(key);
}

export function decodeKey(text: string): StoredKey {
  return JSON.parse(text) as StoredKey;
}

/** Run-time keys in process memory: one instance, and gone when the process ends. */
export function createMemoryKeyBackend(): KeyBackend {
  const records = new Map<string, string>();
  const digests = new Map<string, string>();
  const listeners = new Set<(id: string | undefined) => void>();
  return {
    async get(id) {
      const text = records.get(id);
      return text === undefined ? undefined : decodeKey(text);
    },
    async byDigest(hex) {
      const id = digests.get(hex);
      const text = id === undefined ? undefined : records.get(id);
      return text === undefined ? undefined : decodeKey(text);
    },
    async list() {
      return [...records.values()].map(decodeKey);
    },
    async put(expected, next, liveDigest) {
      if ((records.get(next.id) ?? '') !== (expected ? encodeKey(expected) : '')) return false;
      if (liveDigest !== undefined && (digests.get(liveDigest) ?? next.id) !== next.id) return false;
      records.set(next.id, encodeKey(next));
      if (expected && expected.sha256 !== liveDigest) digests.delete(expected.sha256);
      if (liveDigest !== undefined) digests.set(liveDigest, next.id);
      return true;
    },
    async publish(id) {
      for (const listener of listeners) listener(id);
    },
    async subscribe(listener) {
      listeners.add(listener);
    },
    async close() {
      listeners.clear();
    },
  };
}
