import { hash } from 'node:crypto';

/**
 * Choosing among several upstreams serving the same models (e.g. self-hosted replicas with automatic
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
export function pickTarget(
  fingerprint: string | undefined,
  targetIds: readonly string[],
  loads: readonly number[],
  factor: number,
  turn: number,
  weighted?: { readonly weights: readonly number[]; readonly credits: readonly number[] },
): number {
  const n = targetIds.length;
  if (n === 1) return 0;
  const weight = (index: number): number => weighted?.weights[index] ?? 1;
  if (fingerprint !== undefined) {
    let total = 1;
    let weights = 0;
    for (let i = 0; i < n; i++) {
      total += loads[i] ?? 0;
      weights += weight(i);
    }
    for (const index of rendezvousOrder(fingerprint, targetIds)) if ((loads[index] ?? 0) < Math.ceil((factor * total * weight(index)) / weights)) return index;
  }
  // Least load per weight; among equals, the most credit of smooth weighted round robin (so weights
  // hold while idle), then in turn.
  const rank = (index: number): number => (loads[index] ?? 0) / weight(index);
  const credit = (index: number): number => weighted?.credits[index] ?? 0;
  let best = turn % n;
  for (let k = 1; k < n; k++) {
    const index = (turn + k) % n;
    if (rank(index) < rank(best) || (rank(index) === rank(best) && credit(index) > credit(best))) best = index;
  }
  return best;
}
