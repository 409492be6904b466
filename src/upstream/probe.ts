import type { PoolObserver } from './calibrate.js';
import type { Health } from './health.js';
import { modelsRequest, type PoolMember } from './member.js';

/**
 * Probes of ejected upstreams: when an ejection's cool-down is over, one `GET /models` with the
 * member's own credential; an answer below 400 brings the member back into service, anything else
 * ejects it again for a longer cool-down. Timers do not keep the process alive.
 */

export interface Probes {
  eject(member: PoolMember, coolDownMs: number): void;
  close(): void;
}

const PROBE_TIMEOUT_MS = 10_000;

export function startProbes(options: { readonly health: ReadonlyMap<PoolMember, Health>; readonly observer: PoolObserver | undefined }): Probes {
  const { health, observer } = options;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const schedule = (member: PoolMember, ms: number): void => {
    if (closed) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      void probe(member);
    }, ms);
    timer.unref();
    timers.add(timer);
  };

  const probe = async (member: PoolMember): Promise<void> => {
    const state = health.get(member);
    if (!state || closed) return;
    state.state = 'probing';
    let ok = false;
    try {
      const answer = await member.upstream.send(modelsRequest(member, PROBE_TIMEOUT_MS));
      ok = answer.status < 400;
      answer.body.consume({ data: () => undefined, end: () => undefined, error: () => undefined });
    } catch {
      ok = false;
    }
    if (closed) return;
    if (ok) {
      state.recovered();
      observer?.healthChanged(member.id, true);
      return;
    }
    observer?.ejected(member.id);
    schedule(member, state.eject());
  };

  return {
    eject(member, coolDownMs) {
      observer?.ejected(member.id);
      observer?.healthChanged(member.id, false);
      schedule(member, coolDownMs);
    },
    close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
