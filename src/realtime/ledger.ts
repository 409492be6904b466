import type { Reservation } from '../limits/limiter.js';
import type { Usage } from '../usage/extract.js';

/**
 * The responses of one session and their reservations: each admitted `response.create` waits for
 * its `response.created` (which names it), then for its `response.done` (which settles it). Every
 * reservation is settled exactly once: from the reported usage, released when the upstream never
 * started the response, or at the estimate when the session ended in the middle of it.
 */
export interface Held {
  readonly reservation: Reservation | Promise<Reservation | undefined>;
  readonly estimate: number;
  readonly clientEventId: string | null;
  responseId?: string;
  /** Bytes of upstream events relayed while this response was running (an estimate if it is cut). */
  relayedBytes: number;
}

export type Settled = { readonly held: Held; readonly usage: Usage; readonly source: 'reported' | 'estimated' };

const RELEASED: Usage = { inputTokens: 0, cachedTokens: 0, outputTokens: 0 };

export function settleHeld(held: Held, usage: Usage): void {
  const { reservation } = held;
  if (reservation instanceof Promise) {
    void reservation.then((r) => r?.settle(usage)).catch(() => undefined);
    return;
  }
  const done = reservation.settle(usage);
  if (done instanceof Promise) void done.catch(() => undefined);
}

export class Ledger {
  /** Forwarded `response.create`s the upstream has not named yet, oldest first. */
  private readonly awaiting: Held[] = [];
  private readonly running = new Map<string, Held>();
  private latest: Held | undefined;

  expect(held: Held): void {
    this.awaiting.push(held);
  }

  /** `response.created`: the oldest waiting reservation is this response's; undefined: the server started it itself. */
  created(responseId: string): Held | undefined {
    const held = this.awaiting.shift();
    if (held) this.run(responseId, held);
    return held;
  }

  /** A response the server started (turn detection), admitted after the fact. */
  run(responseId: string, held: Held): void {
    held.responseId = responseId;
    this.running.set(responseId, held);
    this.latest = held;
  }

  /** Upstream bytes relayed while a response runs: counted to the latest one. */
  relayed(bytes: number): void {
    if (this.latest) this.latest.relayedBytes += bytes;
  }

  /** `response.done`: its reservation, now finished (undefined: not one of ours). */
  done(responseId: string): Held | undefined {
    const held = this.running.get(responseId);
    if (!held) return undefined;
    this.running.delete(responseId);
    if (this.latest === held) this.latest = undefined;
    return held;
  }

  /** An upstream `error` answering a client event: a response.create the upstream refused is released. */
  refused(clientEventId: string): boolean {
    const index = this.awaiting.findIndex((held) => held.clientEventId === clientEventId);
    if (index === -1) return false;
    const [held] = this.awaiting.splice(index, 1);
    if (held) settleHeld(held, RELEASED);
    return true;
  }

  /** The session ended: release what never started, settle what was cut at its estimate. */
  end(estimateOutput: (relayedBytes: number) => number): Settled[] {
    for (const held of this.awaiting.splice(0)) settleHeld(held, RELEASED);
    const cut: Settled[] = [];
    for (const held of this.running.values()) {
      const usage: Usage = { inputTokens: held.estimate, cachedTokens: 0, outputTokens: estimateOutput(held.relayedBytes) };
      settleHeld(held, usage);
      cut.push({ held, usage, source: 'estimated' });
    }
    this.running.clear();
    return cut;
  }
}
