import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis, Result } from 'ioredis';
import { hashTag, type AdmitOutcome, type BucketCall, type CounterCall, type LimiterStore } from './store.js';

const luaPath = (name: string): string => fileURLToPath(new URL(`./lua/${name}`, import.meta.url));

function loadLua(name: string): string {
  // The build copies src/limits/lua/ to dist/limits/lua/, so this resolves from src and dist alike.
  return readFileSync(luaPath(name), 'utf8');
}

/** The limiter script's command name on the client. */
export const LIMITER_COMMAND = 'tollgateLimits';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    tollgateLimits(numKeys: number, ...keysAndArgs: (string | number)[]): Result<number[], Context>;
  }
}

/** Register the limiter's script on a client (ioredis defineCommand: EVALSHA with EVAL fallback). */
export function defineLimiterCommands(redis: Redis | Cluster): void {
  if (typeof (redis as Partial<Redis>).tollgateLimits === 'function') return;
  redis.defineCommand(LIMITER_COMMAND, { lua: loadLua('limits.lua') });
}

/**
 * A call that timed out had been sent: Redis may still run it. Its counters (spend, usage) must
 * then not be written again by a retry, or they would count twice.
 */
export function mayHaveRun(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

/** The longest a group waits for the call in flight on its tag before it is sent anyway. */
const HOLD_MAX_MS = 2;

interface Busy {
  /** Script calls sent and not answered yet. */
  inFlight: number;
  /** The timer that sends waiting groups after HOLD_MAX_MS. */
  hold: NodeJS.Timeout | undefined;
}

/** Most admissions one script call takes; a larger burst is split over several calls. */
const MAX_ADMITS_PER_CALL = 128;

interface Admit {
  readonly calls: readonly BucketCall[];
  readonly counters: readonly CounterCall[];
  /** Each call's bucket index in the group (0-based). */
  readonly slots: number[];
  /** Each counter's index in the group (0-based). */
  readonly counterSlots: number[];
  readonly resolve: (outcome: AdmitOutcome) => void;
  readonly reject: (error: unknown) => void;
}

interface Settle {
  readonly slots: number[];
  readonly counterSlots: number[];
  readonly resolve: (levels: readonly number[]) => void;
  readonly reject: (error: unknown) => void;
}

/** The calls of one event-loop turn on one hash tag: one script call. */
class Group {
  readonly keys: string[] = [];
  readonly limits: number[] = [];
  readonly windows: number[] = [];
  readonly deltas: number[] = [];
  readonly hashes: string[] = [];
  /** Counters: `hash\0field` → index, with their hash, field, ttl and settle delta. */
  readonly counterIndex = new Map<string, number>();
  readonly counterHash: number[] = [];
  readonly counterField: string[] = [];
  readonly counterTtl: number[] = [];
  readonly counterDelta: number[] = [];
  readonly admits: Admit[] = [];
  readonly settles: Settle[] = [];

  /** The buckets' indexes in this group, added as needed; undefined if a bucket's figures differ here. */
  place(calls: readonly BucketCall[]): number[] | undefined {
    const slots: number[] = [];
    for (const call of calls) {
      let slot = this.keys.indexOf(call.key);
      if (slot === -1) {
        slot = this.keys.push(call.key) - 1;
        this.limits.push(call.limit);
        this.windows.push(call.windowMs);
        this.deltas.push(0);
      } else if (this.limits[slot] !== call.limit || this.windows[slot] !== call.windowMs) {
        // The figures changed between two calls of one turn: the later call goes in a later group.
        return undefined;
      }
      slots.push(slot);
    }
    return slots;
  }

  /** The counters' indexes in this group, added as needed. */
  placeCounters(counters: readonly CounterCall[]): number[] {
    const slots: number[] = [];
    for (const counter of counters) {
      const id = `${counter.key}\u0000${counter.field}`;
      let slot = this.counterIndex.get(id);
      if (slot === undefined) {
        let hash = this.hashes.indexOf(counter.key);
        if (hash === -1) hash = this.hashes.push(counter.key) - 1;
        slot = this.counterHash.push(hash) - 1;
        this.counterField.push(counter.field);
        this.counterTtl.push(counter.ttlMs ?? 0);
        this.counterDelta.push(0);
        this.counterIndex.set(id, slot);
      } else if (counter.ttlMs) {
        this.counterTtl[slot] = counter.ttlMs;
      }
      slots.push(slot);
    }
    return slots;
  }

  args(): (string | number)[] {
    const out: (string | number)[] = [...this.keys, ...this.hashes, this.keys.length];
    for (let k = 0; k < this.keys.length; k++) out.push(this.limits[k] as number, this.windows[k] as number, this.deltas[k] as number);
    out.push(this.hashes.length, this.counterHash.length);
    for (let s = 0; s < this.counterHash.length; s++) {
      out.push((this.counterHash[s] as number) + 1, this.counterField[s] as string, this.counterTtl[s] as number, this.counterDelta[s] as number);
    }
    out.push(this.admits.length);
    for (const admit of this.admits) {
      out.push(admit.calls.length);
      admit.calls.forEach((call, j) => out.push((admit.slots[j] as number) + 1, call.units));
      out.push(admit.counters.length);
      admit.counters.forEach((counter, j) => out.push((admit.counterSlots[j] as number) + 1, counter.cap ?? -1, counter.units));
    }
    return out;
  }

  /** Hand each caller its part of the script's answer (see lua/limits.lua). */
  answer(reply: readonly number[]): void {
    const K = this.keys.length;
    const S = this.counterHash.length;
    const levels = reply.slice(1, 1 + K).map(Number);
    const values = reply.slice(1 + K, 1 + K + S).map(Number);
    for (const settle of this.settles) {
      settle.resolve([...settle.slots.map((slot) => levels[slot] as number), ...settle.counterSlots.map((slot) => values[slot] as number)]);
    }
    let at = 1 + K + S;
    for (const admit of this.admits) {
      const m = admit.calls.length;
      const c = admit.counters.length;
      const allowed = reply[at] === 1;
      const refusing = Number(reply[at + 1]) - 1;
      const waitMs = Number(reply[at + 2]);
      const outcome: AdmitOutcome = { allowed, refusing: allowed ? -1 : refusing, waitMs, levels: reply.slice(at + 3, at + 3 + m).map(Number) };
      admit.resolve(c === 0 ? outcome : { ...outcome, values: reply.slice(at + 3 + m, at + 3 + m + c).map(Number) });
      at += 3 + m + c;
    }
  }

  fail(error: unknown): void {
    for (const settle of this.settles) settle.reject(error);
    for (const admit of this.admits) admit.reject(error);
  }
}


/**
 * The limiter in Redis, shared by every gateway instance. Admissions and settlements are batched
 * per hash tag into one script call (lua/limits.lua), which runs them atomically in arrival order,
 * settlements first: exactness is the same as one call each, at a fraction of the round trips and
 * of Redis's work under load. A batch gathers one event-loop turn's calls, or, while a call on its
 * tag is in flight, every call until that call's answer (`flush`).
 */
export function createRedisStore(redis: Redis | Cluster): LimiterStore {
  defineLimiterCommands(redis);
  /** Groups waiting to be sent, per hash tag. */
  const pending = new Map<string, Group[]>();
  /** Tags with a script call in flight: their next groups wait for its answer (see `flush`). */
  const busy = new Map<string, Busy>();
  let scheduled = false;

  const send = (tag: string, list: Group[]): void => {
    pending.delete(tag);
    let state = busy.get(tag);
    if (!state) {
      state = { inFlight: 0, hold: undefined };
      busy.set(tag, state);
    } else if (state.hold) {
      clearTimeout(state.hold);
      state.hold = undefined;
    }
    state.inFlight += list.length;
    for (const group of list) {
      redis.tollgateLimits(group.keys.length + group.hashes.length, ...group.args()).then(
        (reply) => {
          answered(tag);
          group.answer(reply);
        },
        (error: unknown) => {
          answered(tag);
          group.fail(error);
        },
      );
    }
  };

  /** A call on `tag` came back: what gathered meanwhile goes now, as one call. */
  const answered = (tag: string): void => {
    const state = busy.get(tag) as Busy;
    if (--state.inFlight > 0) return;
    if (state.hold) clearTimeout(state.hold);
    busy.delete(tag);
    const list = pending.get(tag);
    if (list) send(tag, list);
  };

  /**
   * Once per event-loop turn with new groups. A tag without a call in flight is sent at once; a
   * tag with one waits for its answer, and everything that arrives meanwhile goes in one call
   * (group commit): under load a call carries many requests, at low load none waits. A slow or
   * frozen Redis cannot stretch the wait beyond HOLD_MAX_MS: the group is then sent anyway, and
   * bounded by the command timeout like any call.
   */
  const flush = (): void => {
    scheduled = false;
    for (const [tag, list] of pending) {
      const state = busy.get(tag);
      if (!state) send(tag, list);
      else state.hold ??= setTimeout(release, HOLD_MAX_MS, tag);
    }
  };

  const release = (tag: string): void => {
    const state = busy.get(tag);
    if (state) state.hold = undefined;
    const list = pending.get(tag);
    if (list) send(tag, list);
  };

  /** The group this turn's call joins, and the call's bucket indexes in it. */
  const join = (calls: readonly BucketCall[], counters: readonly CounterCall[], admitting: boolean): { group: Group; slots: number[] } => {
    const tag = hashTag(calls[0]?.key ?? counters[0]?.key ?? '');
    let list = pending.get(tag);
    if (!list) {
      list = [];
      pending.set(tag, list);
    }
    for (const group of list) {
      if (admitting && group.admits.length >= MAX_ADMITS_PER_CALL) continue;
      const slots = group.place(calls);
      if (slots) return { group, slots };
    }
    const group = new Group();
    list.push(group);
    if (!scheduled) {
      scheduled = true;
      // After the I/O callbacks of this turn: every request that arrived in it joins the call.
      setImmediate(flush);
    }
    return { group, slots: group.place(calls) as number[] };
  };

  return {
    admit(calls, counters = NONE) {
      if (calls.length === 0 && counters.length === 0) return Promise.resolve({ allowed: true, refusing: -1, waitMs: 0, levels: [] });
      return new Promise<AdmitOutcome>((resolve, reject) => {
        const { group, slots } = join(calls, counters, true);
        group.admits.push({ calls, counters, slots, counterSlots: group.placeCounters(counters), resolve, reject });
      });
    },
    settle(calls, counters = NONE) {
      if (calls.length === 0 && counters.length === 0) return Promise.resolve([]);
      return new Promise<readonly number[]>((resolve, reject) => {
        const { group, slots } = join(calls, counters, false);
        calls.forEach((call, j) => {
          const slot = slots[j] as number;
          group.deltas[slot] = (group.deltas[slot] as number) + call.units;
        });
        const counterSlots = group.placeCounters(counters);
        counters.forEach((counter, j) => {
          const slot = counterSlots[j] as number;
          group.counterDelta[slot] = (group.counterDelta[slot] as number) + counter.units;
        });
        group.settles.push({ slots, counterSlots, resolve, reject });
      });
    },
    async read(keys) {
      const hashes = await Promise.all(keys.map((key) => redis.hgetall(key)));
      return hashes.map((fields) => Object.fromEntries(Object.entries(fields).map(([field, value]) => [field, Number(value)])));
    },
    async close() {},
  };
}

const NONE: readonly CounterCall[] = [];
