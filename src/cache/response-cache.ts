import type { IncomingHttpHeaders } from 'node:http';
import type { CachePolicy } from '../auth/keys.js';
import type { UsageShape } from '../usage/shape.js';
import { SseDecoder } from '../streaming/sse.js';
import type { Usage } from '../usage/extract.js';
import { createAssembler, type StreamAssembler } from './assemble.js';
import { cacheDirective, cacheKeyOf, type CacheDirective } from './key.js';
import type { CachedAnswer, CacheStore } from './store.js';
import { attempt, chain, detach, type Maybe } from '../util/maybe.js';

/**
 * The exact-repeat response cache: lookup before the upstream call, store after a complete
 * successful answer, and single-flight: identical requests that arrive while one of them is being
 * looked up or answered wait for it instead of calling upstream themselves (per instance). Every
 * store failure is a miss, counted and logged, never a failed request.
 */

/** The response cache outcome of a request, as the `cache` label and `x-tollgate-cache` show it. */
export type CacheOutcome = 'hit' | 'miss' | 'bypass';

/** Endpoints whose answers are stored: those with a usage shape (chat, responses, completions, embeddings). */
const CACHEABLE: ReadonlySet<UsageShape> = new Set(['chat', 'responses', 'completions', 'embeddings']);

/** Raw stream bytes read while assembling, per stored byte allowed: beyond, the stream is not stored. */
const STREAM_OVERHEAD = 32;

export interface ResponseCacheOptions {
  readonly store: CacheStore;
  /** A store call failed (`get`, `set`): counted and logged by the caller. */
  readonly onError: (during: 'get' | 'set', error: unknown) => void;
  /**
   * The longest an identical request waits for the one in flight; then it goes upstream itself,
   * and the flight takes no new waiters (a leader that never answers cannot hold anyone for longer).
   */
  readonly flightWaitMs: number;
}

/**
 * The client of a request that may wait for another's answer (the proxy's RequestState): it may
 * leave while it waits, and the wait must then end.
 */
export interface WaitingClient {
  readonly clientGone: boolean;
  /** The request's one cancel hook, called when the client goes away; the wait sets it while it waits. */
  abortUpstream: (() => void) | undefined;
}

/** Receives the upstream's answer while it is relayed; `end` decides whether it is stored. */
export interface AnswerSink {
  push(chunk: Buffer): void;
  /** `complete`: the whole answer arrived (a stream: its terminal event); `usage` as the relay read it. */
  end(complete: boolean, usage: Usage | undefined): void;
}

/** One cacheable request's dealings with the cache. Exactly one of hit, `begin` or `abandon` ends it. */
export interface CacheTicket {
  readonly outcome: CacheOutcome;
  /** A stored answer, or undefined: go upstream. Never rejects; a wait for another request ends when `client` leaves. */
  lookup(client?: WaitingClient): CachedAnswer | undefined | Promise<CachedAnswer | undefined>;
  /** The upstream answered: a sink to capture it, when it may be stored (status 200, store allowed). */
  begin(status: number, sse: boolean): AnswerSink | undefined;
  /** No answer will come (refused, unreachable, client gone): release the requests waiting on this one. */
  abandon(): void;
}

/** The endpoint as the cache sees it: its route (part of the cache key) and usage shape. */
export interface CacheableRoute {
  readonly url: string;
  readonly usage?: UsageShape | undefined;
}

export interface ResponseCache {
  /** The ticket of a request to a cacheable endpoint by a key with a cache policy; undefined otherwise. */
  open(endpoint: CacheableRoute, policy: CachePolicy, modelLabel: string, body: Record<string, unknown>, headers: IncomingHttpHeaders): CacheTicket | undefined;
  /** Remove every entry, or one scope's (`key:<id>` / `group:<name>`). */
  purge(scope?: string): Promise<number>;
}

interface Flight {
  readonly answer: Promise<CachedAnswer | undefined>;
  settle(answer: CachedAnswer | undefined): void;
}

function newFlight(): Flight {
  let resolve!: (answer: CachedAnswer | undefined) => void;
  const answer = new Promise<CachedAnswer | undefined>((r) => (resolve = r));
  let settled = false;
  return {
    answer,
    settle(found) {
      if (settled) return;
      settled = true;
      resolve(found);
    },
  };
}

/**
 * Wait for a flight's answer, at most `boundMs` and no longer than the client stays. Undefined:
 * no answer came in time (`expired` is then called) or the client left; the request goes upstream
 * itself (a client that left is stopped before that).
 */
function awaitFlight(flight: Flight, boundMs: number, client: WaitingClient | undefined, expired: () => void): Promise<CachedAnswer | undefined> {
  if (client?.clientGone) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const leave = (answer: CachedAnswer | undefined): void => {
      clearTimeout(timer);
      if (client && client.abortUpstream === onGone) client.abortUpstream = undefined;
      resolve(answer);
    };
    const onGone = (): void => leave(undefined);
    const timer = setTimeout(() => {
      expired();
      leave(undefined);
    }, boundMs);
    if (client) client.abortUpstream = onGone;
    void flight.answer.then(leave);
  });
}

export function createResponseCache(options: ResponseCacheOptions): ResponseCache {
  const { store, onError, flightWaitMs } = options;
  const flights = new Map<string, Flight>();

  // A store that fails is a miss (get) or a lost entry (set), never a failed request.
  const failedGet = (err: unknown): undefined => {
    onError('get', err);
    return undefined;
  };
  const failedSet = (err: unknown): void => onError('set', err);
  const safeGet = (scope: string, hash: string): Maybe<CachedAnswer | undefined> => attempt(() => store.get(scope, hash), failedGet);
  const safeSet = (scope: string, hash: string, answer: CachedAnswer, ttlMs: number): void => detach(() => store.set(scope, hash, answer, ttlMs), failedSet);

  return {
    purge: (scope) => store.purge(scope),
    open(endpoint, policy, modelLabel, body, headers) {
      const shape = endpoint.usage;
      if (!shape || !CACHEABLE.has(shape)) return undefined;
      const directive: CacheDirective = body.background === true ? 'no-store' : cacheDirective(headers['cache-control']);
      if (directive === 'no-store') return BYPASS;
      const { scope } = policy;
      const hash = cacheKeyOf(endpoint.url, modelLabel, scope, body);
      const store = (answer: CachedAnswer): void => safeSet(scope, hash, answer, policy.ttlMs);
      if (directive === 'no-cache') {
        // Asked for a fresh answer: no lookup, no waiting on others; the answer is stored.
        return ticket('bypass', () => undefined, shape, policy.maxEntryBytes, store, undefined);
      }
      const joined = flights.get(hash);
      if (joined) {
        // Someone is already looking this up or asking upstream: wait for their answer. If
        // theirs fails, this request goes upstream on its own (and may store).
        const expired = (): void => {
          if (flights.get(hash) === joined) flights.delete(hash);
        };
        return ticket('miss', (client) => awaitFlight(joined, flightWaitMs, client, expired), shape, policy.maxEntryBytes, store, undefined);
      }
      const flight = newFlight();
      flights.set(hash, flight);
      const settle = (answer: CachedAnswer | undefined): void => {
        if (flights.get(hash) === flight) flights.delete(hash);
        flight.settle(answer);
      };
      const seen = (answer: CachedAnswer | undefined): CachedAnswer | undefined => {
        // A hit ends the flight at once; a miss keeps it open until the upstream's answer.
        if (answer) settle(answer);
        return answer;
      };
      const lookup = (): Maybe<CachedAnswer | undefined> => chain(safeGet(scope, hash), seen);
      return ticket('miss', lookup, shape, policy.maxEntryBytes, store, settle);
    },
  };
}

/** no-store, or a request the cache must not answer (a background response): nothing looked up or stored. */
const BYPASS: CacheTicket = {
  outcome: 'bypass',
  lookup: () => undefined,
  begin: () => undefined,
  abandon: () => undefined,
};

function ticket(
  outcome: CacheOutcome,
  lookup: (client?: WaitingClient) => CachedAnswer | undefined | Promise<CachedAnswer | undefined>,
  shape: UsageShape,
  maxEntryBytes: number,
  store: (answer: CachedAnswer) => void,
  settle: ((answer: CachedAnswer | undefined) => void) | undefined,
): CacheTicket {
  return {
    outcome,
    lookup,
    abandon: () => settle?.(undefined),
    begin(status, sse) {
      if (status !== 200) {
        settle?.(undefined);
        return undefined;
      }
      const done = (answer: CachedAnswer | undefined): void => {
        if (answer) store(answer);
        settle?.(answer);
      };
      if (!sse) return jsonSink(shape, maxEntryBytes, done);
      const assembler = createAssembler(shape);
      if (!assembler) {
        done(undefined);
        return undefined;
      }
      return streamSink(shape, assembler, maxEntryBytes, done);
    },
  };
}

/** A JSON answer: its bytes, kept while they stay within the entry bound. */
function jsonSink(shape: UsageShape, maxEntryBytes: number, done: (answer: CachedAnswer | undefined) => void): AnswerSink {
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  return {
    push(chunk) {
      if (!chunks) return;
      size += chunk.length;
      if (size > maxEntryBytes) chunks = undefined;
      else chunks.push(chunk);
    },
    end(complete, usage) {
      done(complete && chunks && usage ? { shape, body: Buffer.concat(chunks, size), usage } : undefined);
      chunks = undefined;
    },
  };
}

/** A stream: decoded on the side and assembled into the JSON answer it amounts to. */
function streamSink(shape: UsageShape, assembler: StreamAssembler, maxEntryBytes: number, done: (answer: CachedAnswer | undefined) => void): AnswerSink {
  let decoder: SseDecoder | undefined = new SseDecoder((event) => assembler.event(event));
  let size = 0;
  return {
    push(chunk) {
      if (!decoder) return;
      size += chunk.length;
      if (size > maxEntryBytes * STREAM_OVERHEAD) decoder = undefined;
      else decoder.push(chunk);
    },
    end(complete, usage) {
      if (!decoder || !complete || !usage) return done(undefined);
      decoder.end();
      decoder = undefined;
      const body = assembler.result();
      done(body && body.length <= maxEntryBytes ? { shape, body, usage } : undefined);
    },
  };
}
