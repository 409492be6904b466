import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis, Result } from 'ioredis';
import { hashTag, settlementId, UnsettledError, type AdmitOutcome, type BucketCall, type CounterCall, type LimiterStore, type SharedCall, type SharedOutcome } from './store.js';

const luaPath = (name: string): string => fileURLToPath(new URL(`./lua/${name}`, import.meta.url));

function loadLua(name: string): string {
  // The build copies src/limits/lua/ to dist/limits/lua/, so this resolves from src and dist alike.
  return readFileSync(luaPath(name), 'utf8');
}

/** The limiter script's command name on the client. */
export const LIMITER_COMMAND = 'tollgateLimits';
/** The shared ceiling's script (lua/fair-share.lua). */
export const FAIR_SHARE_COMMAND = 'tollgateFairShare';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    tollgateLimits(numKeys: number, ...keysAndArgs: (string | Buffer)[]): Result<number[], Context>;
    tollgateFairShare(numKeys: number, ...keysAndArgs: (string | Buffer)[]): Result<number[], Context>;
  }
}

/** Register the limiter's script on a client (ioredis defineCommand: EVALSHA with EVAL fallback). */
export function defineLimiterCommands(redis: Redis | Cluster): void {
  if (typeof (redis as Partial<Redis>).tollgateLimits !== 'function') redis.defineCommand(LIMITER_COMMAND, { lua: loadLua('limits.lua') });
  if (typeof (redis as Partial<Redis>).tollgateFairShare !== 'function') redis.defineCommand(FAIR_SHARE_COMMAND, { lua: loadLua('fair-share.lua') });
}

/** One call of lua/fair-share.lua: the buckets, then the state hash; its numbers as one MessagePack array. */
function fairShareArgs(call: SharedCall, mode: 1 | 2): [number, ...(string | Buffer)[]] {
  const pack = new IntPacker();
  pack.int(mode);
  pack.int(call.buckets.length);
  for (const bucket of call.buckets) {
    pack.int(bucket.limit);
    pack.int(bucket.windowMs);
    pack.int(bucket.units);
  }
  pack.int(call.settings.activeMs);
  pack.int(call.settings.burstMs);
  pack.int(call.claim.weight);
  pack.int(call.claim.priority);
  pack.int(Math.max(0, Math.floor(call.maxWaitMs ?? 0)));
  return [call.buckets.length + 1, ...call.buckets.map((b) => b.key), call.stateKey, pack.finish(), call.claim.entity];
}

/**
 * Whether a failed call may have run in Redis (then its counters must not be written again
 * without a settlement id). Only a call refused before it was written (no connection, and no
 * offline queue) or answered with an error by Redis surely did not; a timeout or a connection
 * that closed with the call in flight may have.
 */
export function mayHaveRun(error: unknown): boolean {
  if (!(error instanceof Error)) return true;
  if (error.name === 'ReplyError') return false;
  return !/enableOfflineQueue options is false/.test(error.message);
}

/**
 * How long Redis remembers a settlement id: longer than any retry of it takes (the usage
 * recorder writes again within a flush interval once Redis answers), short enough to cost little.
 */
export const SETTLEMENT_ID_TTL_MS = 10 * 60_000;

/** The longest a group waits for the call in flight on its tag before it is sent anyway. */
const HOLD_MAX_MS = 2;

/**
 * The longest settlements wait for an admission on their tag to travel with, when nothing else is
 * going to Redis: under load every settlement rides along with admissions (a third fewer script
 * calls in the benchmark), and a lone one is written within this time.
 */
export const SETTLE_DELAY_MS = 10;

interface Busy {
  /** Script calls sent and not answered yet. */
  inFlight: number;
  /** The timer that sends waiting groups: after HOLD_MAX_MS, or SETTLE_DELAY_MS for settlements alone. */
  hold: NodeJS.Timeout | undefined;
  /** The answer to the last call sent on the tag: once it is in, so are the earlier ones (one connection, in order). */
  last: Promise<unknown> | undefined;
}

/**
 * Integers as one MessagePack array (what lua/limits.lua decodes with cmsgpack): fixints, int32,
 * else float64, which holds every integer below 2^53 exactly (as Lua's numbers do).
 */
class IntPacker {
  private buf = Buffer.allocUnsafe(512);
  private at = 5;
  private count = 0;

  int(n: number): void {
    if (this.at + 9 > this.buf.length) {
      const grown = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(grown, 0, 0, this.at);
      this.buf = grown;
    }
    const buf = this.buf;
    this.count++;
    if (n >= -32 && n < 128 && Number.isInteger(n)) {
      buf[this.at++] = n & 0xff;
    } else if (n >= -2_147_483_648 && n <= 2_147_483_647 && Number.isInteger(n)) {
      buf[this.at] = 0xd2;
      buf.writeInt32BE(n, this.at + 1);
      this.at += 5;
    } else {
      buf[this.at] = 0xcb;
      buf.writeDoubleBE(n, this.at + 1);
      this.at += 9;
    }
  }

  finish(): Buffer {
    this.buf[0] = 0xdd;
    this.buf.writeUInt32BE(this.count, 1);
    return this.buf.subarray(0, this.at);
  }
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
  /** Someone waits for this group's answer (an admission, a settlement not `deferrable`): it goes at once. */
  urgent = false;
  /** The settlement id of this call, given when it carries counter deltas (or by the caller, alone). */
  id: string | undefined;
  /** A settlement written again with its id: it travels alone, so the id covers exactly its counters. */
  alone = false;

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

  /** The counter deltas this call settles: what writing it again must write. */
  settledCounters(): CounterCall[] {
    const counters: CounterCall[] = [];
    this.counterDelta.forEach((units, s) => {
      if (units !== 0) {
        const ttlMs = this.counterTtl[s] as number;
        counters.push({ key: this.hashes[this.counterHash[s] as number] as string, field: this.counterField[s] as string, units, ttlMs: ttlMs || undefined });
      }
    });
    return counters;
  }

  /** Number of KEYS, then KEYS and ARGV: the numbers as one MessagePack array, then the counters' fields (see lua/limits.lua). */
  args(): [number, ...(string | Buffer)[]] {
    const pack = new IntPacker();
    const K = this.keys.length;
    const S = this.counterHash.length;
    // Counter deltas are what a retry could double: such a call carries a settlement id, checked
    // by the script in a key under the same hash tag (Cluster: one slot).
    if (!this.id && this.counterDelta.some((units) => units !== 0)) this.id = settlementId();
    const idKey = this.id === undefined ? undefined : settlementKey(this.hashes[0] ?? (this.keys[0] as string), this.id);
    pack.int(idKey === undefined ? 0 : K + this.hashes.length + 1);
    pack.int(idKey === undefined ? 0 : SETTLEMENT_ID_TTL_MS);
    pack.int(K);
    for (let k = 0; k < K; k++) {
      pack.int(this.limits[k] as number);
      pack.int(this.windows[k] as number);
      pack.int(this.deltas[k] as number);
    }
    pack.int(S);
    for (let s = 0; s < S; s++) {
      pack.int((this.counterHash[s] as number) + 1);
      pack.int(this.counterTtl[s] as number);
      pack.int(this.counterDelta[s] as number);
    }
    pack.int(this.admits.length);
    for (const admit of this.admits) {
      const { calls, counters, slots, counterSlots } = admit;
      pack.int(calls.length);
      for (let j = 0; j < calls.length; j++) {
        pack.int((slots[j] as number) + 1);
        pack.int((calls[j] as BucketCall).units);
      }
      pack.int(counters.length);
      for (let j = 0; j < counters.length; j++) {
        const counter = counters[j] as CounterCall;
        pack.int((counterSlots[j] as number) + 1);
        pack.int(counter.cap ?? -1);
        pack.int(counter.units);
      }
    }
    const keys = idKey === undefined ? [...this.keys, ...this.hashes] : [...this.keys, ...this.hashes, idKey];
    return [keys.length, ...keys, pack.finish(), ...this.counterField];
  }

  /**
   * Hand each caller its part of the script's answer (see lua/limits.lua): the levels and values
   * after settlement, and the refused requests. Each admitted request's costs are taken here in
   * arrival order, as the script took them, which gives every request its own levels and values.
   */
  answer(reply: readonly number[]): void {
    const K = this.keys.length;
    const S = this.counterHash.length;
    const levels = new Array<number>(K);
    for (let k = 0; k < K; k++) levels[k] = Number(reply[1 + k]);
    const values = new Array<number>(S);
    for (let s = 0; s < S; s++) values[s] = Number(reply[1 + K + s]);
    for (const settle of this.settles) {
      const out: number[] = [];
      for (const slot of settle.slots) out.push(levels[slot] as number);
      for (const slot of settle.counterSlots) out.push(values[slot] as number);
      settle.resolve(out);
    }
    let refused = 1 + K + S;
    for (let i = 0; i < this.admits.length; i++) {
      const { calls, counters, slots, counterSlots, resolve } = this.admits[i] as Admit;
      const allowed = Number(reply[refused]) !== i + 1;
      let outcome: AdmitOutcome;
      if (allowed) {
        const after = new Array<number>(calls.length);
        for (let j = 0; j < calls.length; j++) {
          const slot = slots[j] as number;
          after[j] = levels[slot] = (levels[slot] as number) - (calls[j] as BucketCall).units * (this.windows[slot] as number);
        }
        outcome = { allowed, refusing: -1, waitMs: 0, levels: after };
        if (counters.length > 0) {
          const valuesAfter = new Array<number>(counters.length);
          for (let j = 0; j < counters.length; j++) {
            const slot = counterSlots[j] as number;
            valuesAfter[j] = values[slot] = (values[slot] as number) + (counters[j] as CounterCall).units;
          }
          outcome = { ...outcome, values: valuesAfter };
        }
      } else {
        outcome = {
          allowed,
          refusing: Number(reply[refused + 1]) - 1,
          waitMs: Number(reply[refused + 2]),
          levels: slots.map((slot) => levels[slot] as number),
        };
        if (counters.length > 0) outcome = { ...outcome, values: counterSlots.map((slot) => values[slot] as number) };
        refused += 3;
      }
      resolve(outcome);
    }
  }

  fail(error: unknown): void {
    // Settlements learn what to write again, and the id that makes doing so safe.
    const unsettled = this.id === undefined ? error : new UnsettledError(error, this.id, this.settledCounters());
    for (const settle of this.settles) settle.reject(unsettled);
    for (const admit of this.admits) admit.reject(error);
  }
}


/**
 * The limiter in Redis, shared by every gateway instance. Admissions and settlements are batched
 * per hash tag into one script call (lua/limits.lua), which runs them atomically in arrival order,
 * settlements first: exactness is the same as one call each, at a fraction of the round trips and
 * of Redis's work under load. A batch gathers one event-loop turn's calls, or, while a call on its
 * tag is in flight, every call until that call's answer (`flush`). Settlements nobody waits for
 * (`deferrable`) wait for the next admission's call, up to SETTLE_DELAY_MS (`delay`).
 */
export interface RedisStoreOptions {
  /** The longest a group waits for the call in flight on its tag (default HOLD_MAX_MS; tests widen it). */
  readonly holdMaxMs?: number;
  /** The longest settlements alone wait for an admission to travel with (default SETTLE_DELAY_MS). */
  readonly settleDelayMs?: number;
}

export function createRedisStore(redis: Redis | Cluster, options: RedisStoreOptions = {}): LimiterStore {
  defineLimiterCommands(redis);
  const holdMaxMs = options.holdMaxMs ?? HOLD_MAX_MS;
  const settleDelayMs = options.settleDelayMs ?? SETTLE_DELAY_MS;
  /** Groups waiting to be sent, per hash tag. */
  const pending = new Map<string, Group[]>();
  /** Tags with a script call in flight: their next groups wait for its answer (see `flush`). */
  const busy = new Map<string, Busy>();
  let scheduled = false;
  /** Once closing, settlements go as they are made: waiting, they could miss the connection. */
  let closing = false;

  const send = (tag: string, list: Group[]): void => {
    pending.delete(tag);
    let state = busy.get(tag);
    if (!state) {
      state = { inFlight: 0, hold: undefined, last: undefined };
      busy.set(tag, state);
    } else if (state.hold) {
      clearTimeout(state.hold);
      state.hold = undefined;
    }
    state.inFlight += list.length;
    for (const group of list) {
      state.last = redis.tollgateLimits(...group.args()).then(
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

  const urgent = (list: readonly Group[]): boolean => list.some((group) => group.urgent);

  /**
   * Nothing in flight on `tag` and only settlements waiting: they wait up to SETTLE_DELAY_MS for an
   * admission to go with (join() then schedules a flush, which sends them together).
   */
  const delay = (tag: string, state: Busy | undefined): void => {
    if (!state) {
      state = { inFlight: 0, hold: undefined, last: undefined };
      busy.set(tag, state);
    }
    state.hold ??= setTimeout(release, settleDelayMs, tag);
  };

  /** A call on `tag` came back: what gathered meanwhile goes now, as one call (settlements alone may wait). */
  const answered = (tag: string): void => {
    const state = busy.get(tag) as Busy;
    if (--state.inFlight > 0) return;
    if (state.hold) clearTimeout(state.hold);
    state.hold = undefined;
    const list = pending.get(tag);
    if (!list) busy.delete(tag);
    else if (urgent(list)) send(tag, list);
    else delay(tag, state);
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
      if (state && state.inFlight > 0) state.hold ??= setTimeout(release, holdMaxMs, tag);
      else if (urgent(list)) send(tag, list);
      else delay(tag, state);
    }
  };

  const release = (tag: string): void => {
    const state = busy.get(tag);
    if (state) state.hold = undefined;
    const list = pending.get(tag);
    if (list) send(tag, list);
    else if (state && state.inFlight === 0) busy.delete(tag);
  };

  /** Send what waits on these tags now, and wait for every call on them to be answered. */
  const drain = async (tags: Iterable<string>): Promise<void> => {
    const answers: Promise<unknown>[] = [];
    for (const tag of tags) {
      const list = pending.get(tag);
      if (list) send(tag, list);
      const last = busy.get(tag)?.last;
      if (last) answers.push(last);
    }
    await Promise.all(answers);
  };

  /** The group this turn's call joins, the call's bucket indexes in it, and its hash tag. `id`: a settlement written again, alone in its group. */
  const join = (calls: readonly BucketCall[], counters: readonly CounterCall[], urgently: boolean, id?: string): { group: Group; slots: number[]; tag: string } => {
    const tag = hashTag(calls[0]?.key ?? counters[0]?.key ?? '');
    let list = pending.get(tag);
    if (!list) {
      list = [];
      pending.set(tag, list);
    }
    // After the I/O callbacks of this turn: every request that arrived in it joins the call. A
    // settlement joining waiting settlements needs no flush; an admission joining them does.
    if (!scheduled && (urgently || list.length === 0)) {
      scheduled = true;
      setImmediate(flush);
    }
    let joined: { group: Group; slots: number[]; tag: string } | undefined;
    for (const group of id === undefined ? list : []) {
      if (group.alone || (urgently && group.admits.length >= MAX_ADMITS_PER_CALL)) continue;
      const slots = group.place(calls);
      if (slots) {
        joined = { group, slots, tag };
        break;
      }
    }
    if (!joined) {
      const group = new Group();
      if (id !== undefined) {
        group.id = id;
        group.alone = true;
      }
      list.push(group);
      joined = { group, slots: group.place(calls) as number[], tag };
    }
    if (urgently) joined.group.urgent = true;
    return joined;
  };

  return {
    admit(calls, counters = NONE) {
      if (calls.length === 0 && counters.length === 0) return Promise.resolve({ allowed: true, refusing: -1, waitMs: 0, levels: [] });
      return new Promise<AdmitOutcome>((resolve, reject) => {
        const { group, slots } = join(calls, counters, true);
        group.admits.push({ calls, counters, slots, counterSlots: group.placeCounters(counters), resolve, reject });
      });
    },
    settle(calls, counters = NONE, deferrable = false, id) {
      if (calls.length === 0 && counters.length === 0) return Promise.resolve([]);
      return new Promise<readonly number[]>((resolve, reject) => {
        const { group, slots, tag } = join(calls, counters, !deferrable || id !== undefined, id);
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
        // Closing, the connection may quit before a flush: written now, ahead of the quit.
        if (closing) send(tag, pending.get(tag) as Group[]);
      });
    },
    async admitShared(call) {
      const reply = await redis.tollgateFairShare(...fairShareArgs(call, 1));
      const K = call.buckets.length;
      const outcome: SharedOutcome = {
        allowed: Number(reply[0]) === 1,
        refusing: Number(reply[1]) - 1,
        waitMs: Number(reply[2]),
        borrowed: Number(reply[3]) === 1,
        levels: Array.from({ length: K }, (_, k) => Number(reply[4 + k])),
      };
      return outcome;
    },
    async settleShared(call) {
      const reply = await redis.tollgateFairShare(...fairShareArgs(call, 2));
      return reply.map(Number);
    },
    async read(keys) {
      // This instance's settlements still waiting count: they go first.
      await drain(new Set(keys.map(hashTag))).catch(() => undefined);
      const hashes = await Promise.all(keys.map((key) => redis.hgetall(key)));
      return hashes.map((fields) => Object.fromEntries(Object.entries(fields).map(([field, value]) => [field, Number(value)])));
    },
    /** Settlements still waiting are written before the connection closes. */
    async close() {
      closing = true;
      await drain([...pending.keys()]).catch(() => undefined);
    },
  };
}

const NONE: readonly CounterCall[] = [];

/** The key that remembers a settlement id: under the hash tag of `key` (a key of the same call). */
function settlementKey(key: string, id: string): string {
  const close = key.indexOf('}');
  return `${close === -1 ? key : key.slice(0, close + 1)}:settled:${id}`;
}
