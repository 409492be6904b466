// Issue 20, fault 1: identical requests wait for the one in flight (single flight), but never
// forever: the wait ends when its own client leaves, and after flightWaitMs at the latest; an
// expired flight takes no new waiters. The real response cache over its real in-memory store.
import { describe, expect, it } from 'vitest';
import { createMemoryCacheStore } from '../../src/cache/memory-store.js';
import { createResponseCache, type WaitingClient } from '../../src/cache/response-cache.js';

const ROUTE = { url: '/v1/chat/completions', usage: 'chat' as const };
const POLICY = { ttlMs: 60_000, maxEntryBytes: 1 << 20, scope: 'key:flight' };
const BODY = { model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'same question' }] };

function cache(flightWaitMs: number) {
  return createResponseCache({ store: createMemoryCacheStore({ maxBytes: 1 << 20 }), onError: () => undefined, flightWaitMs });
}
const open = (responseCache: ReturnType<typeof cache>) => {
  const ticket = responseCache.open(ROUTE, POLICY, 'gpt-4.1-nano', BODY, {});
  if (!ticket) throw new Error('expected a cache ticket');
  return ticket;
};

describe('single flight waits', () => {
  it('end when the waiting client leaves, though the first request never answers', async () => {
    const responseCache = cache(600_000);
    expect(open(responseCache).lookup()).toBeUndefined(); // the first request: a miss, now in flight
    const client: WaitingClient = { clientGone: false, abortUpstream: undefined };
    const waiting = open(responseCache).lookup(client);
    expect(waiting).toBeInstanceOf(Promise);
    expect(client.abortUpstream).toBeTypeOf('function');
    // What the gateway does when the connection closes (app.ts).
    client.abortUpstream?.();
    await expect(waiting).resolves.toBeUndefined();
    expect(client.abortUpstream).toBeUndefined();
    // A client already gone does not wait at all.
    await expect(open(responseCache).lookup({ clientGone: true, abortUpstream: undefined })).resolves.toBeUndefined();
  });

  it('end after flightWaitMs, and the expired flight takes no new waiters', async () => {
    const responseCache = cache(50);
    const first = open(responseCache);
    expect(first.lookup()).toBeUndefined();
    await expect(open(responseCache).lookup()).resolves.toBeUndefined();
    // The next identical request is a first request itself (a synchronous miss), not a waiter.
    expect(open(responseCache).lookup()).toBeUndefined();
    first.abandon();
  });
});
