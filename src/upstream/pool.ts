import { performance } from 'node:perf_hooks';
import { ModelNotFoundError } from '../errors/errors.js';
import type { CeilingHold, Ceilings } from '../limits/ceiling.js';
import { readable, readAnswer, replay } from './buffered.js';
import { calibrate, limitFrom429, type NamedLimit, type PoolObserver } from './calibrate.js';
import { UpstreamAbortedError } from './call.js';
import type { Cancellable, Upstream, UpstreamRequest, UpstreamResponse } from './client.js';
import { Health, type EjectionPolicy, type HealthState } from './health.js';
import { memberPath, serves, withCredential, type PoolMember } from './member.js';
import { startProbes, type Probes } from './probe.js';
import { backoffMs, isCreate, neverReceived, replayable, retryableError, retryableStatus, retryAfterMs, type RetryPolicy } from './retry.js';
import { pickTarget } from './targets.js';

/**
 * The upstream pool: one `Upstream` over several members. For each request it picks a member that
 * serves the model, is not ejected and has headroom in its ceiling (prefix affinity first, then
 * load per weight); then retries and fails over while no byte of the answer has reached the
 * client: connect errors, resets, head timeouts, 429 and 500/502/503/504 go to another member,
 * or to the same after a full-jitter backoff that honours retry-after(-ms) and x-should-retry,
 * bounded by `max_attempts` and a deadline. Requests without a model (files, batches, stored
 * objects) live in one organisation: they go to the default (first) member only.
 */

/** The largest 429 body read for the limit it names. */
const MAX_429_BYTES = 64 * 1024;

export interface PoolOptions {
  readonly members: readonly PoolMember[];
  readonly retry: RetryPolicy;
  readonly ejection: EjectionPolicy;
  /** Bounded load of prefix affinity (upstream.balance_factor). */
  readonly balanceFactor: number;
  readonly ceilings: Ceilings | undefined;
  readonly observer?: PoolObserver | undefined;
  readonly random?: (() => number) | undefined;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

export interface UpstreamPool extends Upstream {
  /** True while every model some member names (or every model at all) has a member in service. */
  ready(): boolean;
  /** Each member's health, by id. */
  health(): Record<string, HealthState>;
  /** The members, the default (first) first. */
  readonly members: readonly PoolMember[];
}

interface Chosen {
  readonly member: PoolMember;
  readonly hold: CeilingHold | undefined;
}

export function createUpstreamPool(options: PoolOptions): UpstreamPool {
  const { members, retry, observer } = options;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const health = new Map(members.map((m) => [m, new Health(options.ejection)]));
  // Smooth weighted round robin (nginx's): every pick adds each candidate's weight to its credit
  // and takes the candidates' total from the one picked.
  const credits = new Map(members.map((m) => [m, 0]));
  const fallback = [members[0] as PoolMember];
  const byModel = new Map<string, PoolMember[]>();
  let turn = 0;
  const inService = (m: PoolMember): boolean => health.get(m)?.state === 'healthy';
  const probes: Probes = startProbes({ health, observer });
  // Failure-percentage ejection counts over intervals: the counts start over at each one.
  const { failurePercentage, intervalMs } = options.ejection;
  const intervals = failurePercentage && intervalMs ? setInterval(() => health.forEach((h) => h.nextInterval()), intervalMs) : undefined;
  intervals?.unref();

  const candidatesFor = (model: string | undefined): PoolMember[] => {
    if (model === undefined) return fallback;
    let found = byModel.get(model);
    if (!found) {
      found = members.filter((m) => serves(m, model));
      if (byModel.size < 10_000) byModel.set(model, found);
    }
    if (found.length === 0) throw new ModelNotFoundError(model);
    return found;
  };

  /** Members in the order to try: untried and in service first (all of them when none is), best first. */
  const ordered = (request: UpstreamRequest, candidates: readonly PoolMember[], tried: ReadonlySet<PoolMember> | undefined): PoolMember[] => {
    if (candidates.length === 1) return candidates as PoolMember[];
    let pool = candidates.filter((m) => inService(m) && !tried?.has(m));
    if (pool.length === 0) pool = candidates.filter(inService);
    if (pool.length === 0) pool = [...candidates];
    if (pool.length === 1) return pool;
    const loads = pool.map((m) => m.upstream.load());
    // Credits follow only the picks they decide (prefix affinity picks by its own rank).
    const weighted = request.affinity === undefined;
    let total = 0;
    for (const m of pool) {
      if (weighted) credits.set(m, (credits.get(m) ?? 0) + m.weight);
      total += m.weight;
    }
    const first = pickTarget(request.affinity, pool.map((m) => m.id), loads, options.balanceFactor, turn++, {
      weights: pool.map((m) => m.weight),
      credits: pool.map((m) => credits.get(m) ?? 0),
    });
    const chosen = pool[first] as PoolMember;
    if (weighted) credits.set(chosen, (credits.get(chosen) ?? 0) - total);
    const rest = pool.filter((_, i) => i !== first).sort((a, b) => a.upstream.load() / a.weight - b.upstream.load() / b.weight);
    return [chosen, ...rest];
  };

  /**
   * The first member in order with headroom in its ceiling; none: wait within max_wait_ms, else its
   * 429. Without a ceiling on the first member (no ceilings configured, or none for the model) the
   * choice is made at once, without a promise: the common path pays no extra microtask turns.
   */
  const choose = (request: UpstreamRequest, candidates: readonly PoolMember[], tried: ReadonlySet<PoolMember> | undefined, waitUntil: number, gone: () => boolean): Chosen | Promise<Chosen> => {
    const order = ordered(request, candidates, tried);
    const first = order[0] as PoolMember;
    if (!options.ceilings || request.model === undefined || !first.ceiling?.(request.model)) return { member: first, hold: undefined };
    return chooseWithin(request, candidates, tried, waitUntil, gone, order);
  };

  const chooseWithin = async (
    request: UpstreamRequest,
    candidates: readonly PoolMember[],
    tried: ReadonlySet<PoolMember> | undefined,
    waitUntil: number,
    gone: () => boolean,
    firstOrder: PoolMember[],
  ): Promise<Chosen> => {
    let order: PoolMember[] | undefined = firstOrder;
    for (;;) {
      let soonest: { refused: Error; waitMs: number } | undefined;
      for (const member of order ?? ordered(request, candidates, tried)) {
        const figures = request.model === undefined ? undefined : member.ceiling?.(request.model);
        if (!figures || !options.ceilings) return { member, hold: undefined };
        const tokens = request.tokens ?? 0;
        const answer = await options.ceilings.take(member.id, member.owner, request.model as string, figures, tokens, request.share, waitUntil - performance.now());
        if (!('refused' in answer)) {
          if (answer.borrowed !== undefined && request.share) observer?.shareAdmitted?.(member.id, request.share.entity, tokens, answer.borrowed);
          return { member, hold: answer };
        }
        observer?.ceilingRefused(member.id);
        if (!soonest || answer.waitMs < soonest.waitMs) soonest = answer;
      }
      order = undefined;
      const refusal = soonest as { refused: Error; waitMs: number };
      if (performance.now() + refusal.waitMs > waitUntil || gone()) throw refusal.refused;
      await sleep(refusal.waitMs);
      if (gone()) throw refusal.refused;
    }
  };

  const failed = (member: PoolMember): void => {
    const coolDown = health.get(member)?.failed();
    if (coolDown !== undefined) probes.eject(member, coolDown);
  };

  async function send(request: UpstreamRequest, outer?: Cancellable): Promise<UpstreamResponse> {
    const start = performance.now();
    const deadline = start + retry.deadlineMs;
    const waitUntil = start + (request.maxWaitMs ?? 0);
    const candidates = candidatesFor(request.model);
    const inner: Cancellable = { abortUpstream: undefined };
    let cancelled = false;
    let wake: (() => void) | undefined;
    if (outer) {
      outer.abortUpstream = () => {
        cancelled = true;
        inner.abortUpstream?.();
        wake?.();
      };
    }
    const gone = (): boolean => cancelled || request.signal?.aborted === true;
    let tried: Set<PoolMember> | undefined;
    let previous: PoolMember | undefined;
    let named: number | undefined;
    for (let attempt = 1; ; attempt++) {
      const choice = choose(request, candidates, tried, Math.max(waitUntil, performance.now()), gone);
      const { member, hold } = choice instanceof Promise ? await choice : choice;
      if (attempt > 1) {
        if (member === previous) {
          observer?.retried(member.id);
          const pause = backoffMs(retry, attempt - 1, named, random);
          if (pause > 0) await new Promise<void>((resolve) => ((wake = resolve), setTimeout(resolve, pause)));
          wake = undefined;
        } else observer?.failedOver(previous?.id ?? '', member.id);
      }
      if (outer) {
        outer.upstreamId = member.id;
        outer.upstreamAttempts = attempt;
      }
      if (gone()) {
        hold?.release();
        throw new Error('the request was cancelled');
      }
      const headers = withCredential(member, request.headers as Record<string, string | string[]>);
      const sentAt = performance.now();
      let response: UpstreamResponse;
      try {
        // A literal, not `{ ...request, headers, path }`: the spread copy is V8's slow path.
        response = await member.upstream.send(
          {
            method: request.method,
            path: memberPath(member, request.path, request.model),
            headers,
            body: request.body,
            signal: request.signal,
            affinity: request.affinity,
            model: request.model,
            tokens: request.tokens,
            maxWaitMs: request.maxWaitMs,
            share: request.share,
          },
          inner,
        );
      } catch (err) {
        observer?.attempted(member.id, neverReceived(err) ? 'connect_error' : 'error', (performance.now() - sentAt) / 1000);
        if (neverReceived(err)) hold?.release();
        else hold?.settle(0);
        failed(member);
        const again = retryableError(err) && replayable(request.body) && (neverReceived(err) || !isCreate(request.method, request.path));
        if (!again || gone() || attempt >= retry.maxAttempts || performance.now() >= deadline) throw err;
        (tried ??= new Set()).add(member);
        previous = member;
        named = undefined;
        continue;
      }
      const seconds = (performance.now() - sentAt) / 1000;
      let hit: NamedLimit | undefined;
      if (hold && response.status === 429 && readable(response.head, MAX_429_BYTES)) {
        // The 429's body may name the limit hit: read it (small and plain only), then hand it on.
        // A client that leaves meanwhile aborts the body without telling its reader: wake it.
        const body = response.body;
        const read = (resolve: (bytes: Buffer | Error) => void): void => {
          wake = () => resolve(new UpstreamAbortedError());
          readAnswer(body, MAX_429_BYTES).then(resolve, resolve);
        };
        const bytes = gone() ? new UpstreamAbortedError() : await new Promise<Buffer | Error>(read);
        wake = undefined;
        if (Buffer.isBuffer(bytes)) hit = limitFrom429(bytes);
        response = { ...response, body: replay(bytes) };
      }
      if (hold) calibrate(member.id, request.model as string, hold, response.head, observer, hit, request.tokens ?? 0);
      if (response.status >= 500) failed(member);
      else health.get(member)?.succeeded();
      const last = attempt >= retry.maxAttempts || gone() || performance.now() >= deadline;
      if (!last && retryableStatus(response.status, response.head) && replayable(request.body) && !isCreate(request.method, request.path)) {
        named = retryAfterMs(response.head);
        // A wait the deadline does not allow on the only member left: this answer is the client's.
        const alone = candidates.every((m) => m === member || tried?.has(m) || !inService(m));
        if (!(alone && performance.now() + (named ?? 0) > deadline)) {
          observer?.attempted(member.id, String(response.status), seconds);
          response.body.destroy();
          hold?.settle(0);
          (tried ??= new Set()).add(member);
          previous = member;
          continue;
        }
      }
      observer?.attempted(member.id, response.status < 400 ? 'ok' : String(response.status), seconds);
      return hold ? { ...response, ceiling: hold } : response;
    }
  }

  return {
    send,
    members,
    ready() {
      const healthy = members.filter(inService);
      if (healthy.some((m) => !m.models)) return true;
      for (const m of members) for (const model of m.models ?? []) if (!healthy.some((h) => serves(h, model))) return false;
      return healthy.length > 0;
    },
    health: () => Object.fromEntries(members.map((m) => [m.id, health.get(m)?.state ?? 'healthy'])),
    close: async () => {
      probes.close();
      if (intervals) clearInterval(intervals);
      await Promise.all(members.map((m) => m.upstream.close()));
    },
  };
}
