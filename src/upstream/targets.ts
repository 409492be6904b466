import { hash } from 'node:crypto';
import type { LoadedUpstream, Upstream, UpstreamRequest } from './client.js';

/**
 * Several upstream targets serving the same models (e.g. self-hosted replicas with automatic
 * prefix caching). A request with a prefix fingerprint goes to the target that ranks highest for
 * it by rendezvous hashing (so each replica keeps seeing the same prefixes, and adding or removing
 * a target moves only its own share), unless that target is over its bounded load: then the next
 * in rank takes it ("consistent hashing with bounded loads"). A request without a fingerprint goes
 * to the least-loaded target, in turn among equals. Load is the requests in flight on the target's
 * pool (undici's own count: nothing is tracked per request).
 */

/** The rendezvous score of a target for a fingerprint: 48 bits of SHA-1 over both. */
function score(fingerprint: string, targetId: string): number {
  return Number.parseInt(hash('sha1', `${fingerprint}|${targetId}`, 'hex').slice(0, 12), 16);
}

/** Target ids in rendezvous order for a fingerprint, best first. */
export function rendezvousOrder(fingerprint: string, targetIds: readonly string[]): number[] {
  const scored = targetIds.map((id, index) => ({ index, score: score(fingerprint, id) }));
  scored.sort((a, b) => b.score - a.score || a.index - b.index);
  return scored.map((s) => s.index);
}

/**
 * The target for one request. `loads` are the targets' requests in flight; `turn` rotates ties
 * among equally loaded targets. With a fingerprint, no target takes more than
 * ceil(factor × (total load + 1) / n): some target is always below that.
 */
export function pickTarget(fingerprint: string | undefined, targetIds: readonly string[], loads: readonly number[], factor: number, turn: number): number {
  const n = targetIds.length;
  if (n === 1) return 0;
  if (fingerprint !== undefined) {
    let total = 1;
    for (const load of loads) total += load;
    const cap = Math.ceil((factor * total) / n);
    for (const index of rendezvousOrder(fingerprint, targetIds)) if ((loads[index] ?? 0) < cap) return index;
  }
  let best = turn % n;
  for (let k = 1; k < n; k++) {
    const index = (turn + k) % n;
    if ((loads[index] ?? 0) < (loads[best] ?? 0)) best = index;
  }
  return best;
}

export interface BalancedTarget {
  readonly id: string;
  readonly upstream: Upstream;
  /** Requests in flight on this target now. */
  load(): number;
}

/** One Upstream over several targets; `request.affinity` is the prompt's fingerprint. */
export function createBalancedUpstream(targets: readonly BalancedTarget[], factor: number): Upstream & { readonly picked: number[] } {
  const ids = targets.map((t) => t.id);
  let turn = 0;
  // Requests sent to each target since start (tests and logs read it).
  const picked = targets.map(() => 0);
  return {
    picked,
    send(request: UpstreamRequest, cancellable) {
      const loads = targets.map((t) => t.load());
      const index = pickTarget(request.affinity, ids, loads, factor, turn++);
      picked[index] = (picked[index] ?? 0) + 1;
      return (targets[index] as BalancedTarget).upstream.send(request, cancellable);
    },
    close: async () => {
      await Promise.all(targets.map((t) => t.upstream.close()));
    },
  };
}

/** The upstream of the config: one pool, or one per `upstream.targets` entry behind the balancer. */
export function createConfiguredUpstream(
  config: { readonly url?: string | undefined; readonly targets: readonly { readonly url: string }[]; readonly balance_factor: number },
  pool: (baseUrl: string) => LoadedUpstream,
  defaultUrl: string,
): Upstream {
  if (config.targets.length === 0) return pool(config.url ?? defaultUrl);
  return createBalancedUpstream(
    config.targets.map((target, index) => {
      const upstream = pool(target.url);
      return { id: `${index}:${target.url}`, upstream, load: () => upstream.load() };
    }),
    config.balance_factor,
  );
}
