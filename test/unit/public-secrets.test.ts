// The published demo secret is accepted only from the gateway's own machine (issue 14, item 17):
// the key store refuses it for a request from any other address, from a proxy, or of unknown
// origin, whether the config gives it as `key` or as `key_sha256`; other secrets are not affected.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RequestPeer } from '../../src/auth/public-secrets.js';
import { configFromObject } from '../../src/config/load.js';
import { PublicKeyRemoteError } from '../../src/errors/errors.js';
import { createKeyStore } from '../../src/keys/registry.js';

const DEMO = 'tg-demo-key-change-me';
const OWN = 'tg-own-secret-public-secrets-0123456789';
const { keys } = configFromObject({
  keys: [
    { id: 'demo', key: DEMO, tier: 'tier-1' },
    { id: 'own', key: OWN, tier: 'tier-1' },
  ],
});
const store = createKeyStore(keys);
const hashedStore = createKeyStore(configFromObject({ keys: [{ id: 'hashed', key_sha256: createHash('sha256').update(DEMO).digest('hex').toUpperCase(), tier: 'free' }] }).keys);

const peer = (remoteAddress: string | undefined, headers: RequestPeer['headers'] = {}): RequestPeer => ({ socket: { remoteAddress }, headers });
const bearer = (secret: string) => `Bearer ${secret}`;

describe('a key with the published demo secret', () => {
  it.each(['127.0.0.1', '127.0.0.53', '::1', '::ffff:127.0.0.1'])('is accepted from loopback %s', (address) => {
    expect(store.authenticate(bearer(DEMO), peer(address))).toMatchObject({ id: 'demo' });
  });

  it.each([
    ['another address', peer('203.0.113.7')],
    ['a private address', peer('10.0.0.5')],
    ['an IPv4-mapped remote address', peer('::ffff:192.0.2.1')],
    ['loopback relayed by a proxy (x-forwarded-for)', peer('127.0.0.1', { 'x-forwarded-for': '127.0.0.1' })],
    ['loopback relayed by a proxy (forwarded)', peer('::1', { forwarded: 'for=203.0.113.7' })],
    ['an unknown peer address', peer(undefined)],
    ['no peer at all', undefined],
  ])('is refused from %s with 401 invalid_api_key', (_name, from) => {
    expect(() => store.authenticate(bearer(DEMO), from)).toThrow(PublicKeyRemoteError);
    expect(() => hashedStore.authenticate(bearer(DEMO), from)).toThrow(PublicKeyRemoteError);
  });

  it('is listed for the start-up warning; a key with its own secret works from anywhere', () => {
    expect(store.publicKeyIds).toEqual(['demo']);
    expect(hashedStore.publicKeyIds).toEqual(['hashed']);
    expect(store.authenticate(bearer(OWN), peer('203.0.113.7'))).toMatchObject({ id: 'own' });
    const error = new PublicKeyRemoteError(DEMO);
    expect(error.toBody().error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key' });
    expect(error.status).toBe(401);
  });
});
