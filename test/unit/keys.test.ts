import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerToken, type Caller } from '../../src/auth/keys.js';
import { createKeyStore } from '../../src/keys/registry.js';
import { configFromObject } from '../../src/config/load.js';
import { InvalidApiKeyError, maskKey, MissingApiKeyError } from '../../src/errors/errors.js';

const PLAIN_SECRET = 'tg-plain-secret-0123456789abcdefXYZ1';
const HASHED_SECRET = 'tg-hashed-secret-fedcba9876543210QRS9';
const sha256hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

const config = configFromObject({
  keys: [
    { id: 'plain-app', key: PLAIN_SECRET, tier: 'tier-1' },
    { id: 'hashed-app', key_sha256: sha256hex(HASHED_SECRET), tier: 'tier-3', limits: { rpm: 7 } },
  ],
});
const store = createKeyStore(config.keys);

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('createKeyStore', () => {
  it('authenticates a `key` entry and a `key_sha256` entry', () => {
    expect(store.size).toBe(2);
    expect(store.authenticate(`Bearer ${PLAIN_SECRET}`)).toEqual({ id: 'plain-app', tier: 'tier-1', limits: undefined, share: { entity: 'key:plain-app', weight: 1, priority: 0 } });
    expect(store.authenticate(`Bearer ${HASHED_SECRET}`)).toEqual({ id: 'hashed-app', tier: 'tier-3', limits: { rpm: 7 }, share: { entity: 'key:hashed-app', weight: 1, priority: 0 } });
  });

  it('accepts an upper-case sha256 digest', () => {
    const upper = createKeyStore(configFromObject({ keys: [{ id: 'u', key_sha256: sha256hex(HASHED_SECRET).toUpperCase(), tier: 'free' }] }).keys);
    expect((upper.authenticate(`Bearer ${HASHED_SECRET}`) as Caller).id).toBe('u');
  });

  it('accepts the scheme case-insensitively and surrounding whitespace', () => {
    expect((store.authenticate(`bearer ${PLAIN_SECRET}`) as Caller).id).toBe('plain-app');
    expect((store.authenticate(`  Bearer   ${PLAIN_SECRET}  `) as Caller).id).toBe('plain-app');
  });

  it('the caller never carries the secret or its digest', () => {
    const caller = store.authenticate(`Bearer ${HASHED_SECRET}`);
    const text = JSON.stringify(caller);
    expect(text).not.toContain(HASHED_SECRET);
    expect(text).not.toContain(sha256hex(HASHED_SECRET));
  });

  it('a wrong key → InvalidApiKeyError with the key masked (last 4 shown, never the whole key)', () => {
    const wrong = 'tg-wrong-key-presented-by-client-7Q9Z';
    const err = thrown(() => store.authenticate(`Bearer ${wrong}`));
    expect(err).toBeInstanceOf(InvalidApiKeyError);
    const e = err as InvalidApiKeyError;
    expect(e.status).toBe(401);
    expect(e.toBody().error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
    expect(e.message).toMatch(/^Incorrect API key provided: /);
    expect(e.message).not.toContain(wrong);
    expect(e.message).toContain('7Q9Z');
    // no long run of the secret is visible: at most its first 7 and last 4 characters
    const masked = /provided: (\S+)\./.exec(e.message)?.[1] ?? '';
    expect(masked.endsWith('7Q9Z')).toBe(true);
    expect(masked.replace(/\*/g, '').length).toBeLessThanOrEqual(11);
  });

  it('a near miss (valid key plus or minus one character) is rejected', () => {
    expect(thrown(() => store.authenticate(`Bearer ${PLAIN_SECRET}x`))).toBeInstanceOf(InvalidApiKeyError);
    expect(thrown(() => store.authenticate(`Bearer ${PLAIN_SECRET.slice(0, -1)}`))).toBeInstanceOf(InvalidApiKeyError);
    expect(thrown(() => store.authenticate(`Bearer ${sha256hex(HASHED_SECRET)}`))).toBeInstanceOf(InvalidApiKeyError);
  });

  it('a missing, blank or non-Bearer header → MissingApiKeyError', () => {
    for (const header of [undefined, '', '   ', 'Bearer', 'Bearer ', 'Bearer    ', `Basic ${Buffer.from(`u:${PLAIN_SECRET}`).toString('base64')}`, PLAIN_SECRET]) {
      const err = thrown(() => store.authenticate(header));
      expect({ header, missing: err instanceof MissingApiKeyError }).toEqual({ header, missing: true });
      expect((err as MissingApiKeyError).status).toBe(401);
      expect((err as MissingApiKeyError).message).toMatch(/^You didn't provide an API key/);
    }
  });

  it('bearerToken takes everything after Bearer, so a malformed key is "incorrect", not "missing"', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc  ')).toBe('abc');
    expect(bearerToken('Bearer a b')).toBe('a b');
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it('a duplicate id is rejected', () => {
    const keys = configFromObject({
      keys: [
        { id: 'dup', key: 'secret-one-111111', tier: 'free' },
        { id: 'dup', key: 'secret-two-222222', tier: 'free' },
      ],
    }).keys;
    expect(() => createKeyStore(keys)).toThrow(/dup/);
  });

  it('the same secret under two ids is rejected (also across key and key_sha256)', () => {
    const same = configFromObject({
      keys: [
        { id: 'a', key: 'shared-secret-1234', tier: 'free' },
        { id: 'b', key: 'shared-secret-1234', tier: 'tier-1' },
      ],
    }).keys;
    expect(() => createKeyStore(same)).toThrow(/\ba\b.*\bb\b/);
    const mixed = configFromObject({
      keys: [
        { id: 'a', key: 'shared-secret-1234', tier: 'free' },
        { id: 'b', key_sha256: sha256hex('shared-secret-1234'), tier: 'free' },
      ],
    }).keys;
    expect(() => createKeyStore(mixed)).toThrow();
    const error = thrown(() => createKeyStore(mixed)) as Error;
    expect(error.message).not.toContain('shared-secret-1234');
  });
});

describe('maskKey', () => {
  it('shows no character of a short key', () => {
    for (const key of ['a', 'abc', 'abcdefgh', 'abcdefghijk']) {
      const masked = maskKey(key);
      expect(masked).toMatch(/^\*+$/);
    }
  });

  it('shows at most a short head and the last 4 characters of a long key', () => {
    for (const key of ['abcdefghijkl', 'sk-proj-0123456789abcdefghijklmnopqrstuvwxyz-ABCD', 'x'.repeat(200) + 'TAIL']) {
      const masked = maskKey(key);
      expect(masked).not.toBe(key);
      expect(masked.endsWith(key.slice(-4))).toBe(true);
      const visible = masked.replace(/\*/g, '');
      expect(visible.length).toBeLessThanOrEqual(11);
      expect(visible.length).toBeLessThan(key.length / 2 + 4);
      expect(key.startsWith(masked.slice(0, masked.indexOf('*')))).toBe(true);
    }
  });

  it('bounds the mask length for very long keys', () => {
    expect(maskKey('k'.repeat(10_000)).length).toBeLessThan(64);
  });
});
