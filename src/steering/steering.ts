import type { UsageShape } from '../usage/shape.js';
import { fingerprintOf } from './fingerprint.js';

/**
 * Prefix steering for OpenAI's prompt cache. OpenAI sends a request to a cache machine by a hash
 * of its first ~256 tokens combined with the optional `prompt_cache_key`; above ~15 requests per
 * minute for one prefix + key, requests overflow to other machines and miss. Tollgate counts the
 * rate of each fingerprint and, when the client sent no `prompt_cache_key`, sets
 * `tg-<fingerprint>-<shard>` with as many shards as keep each under `shardRpm`, handed out in
 * turn. The count is per instance, scaled by the number of instances (`limits.instances`), which
 * assumes a load balancer that spreads requests evenly.
 */

export interface PrefixRoute {
  /** The prompt's stable-head fingerprint (also the upstream affinity). */
  readonly fingerprint: string;
  /** The `prompt_cache_key` to set, or undefined when the client sent its own (or steering is off). */
  readonly promptCacheKey: string | undefined;
}

export interface PrefixSteeringOptions {
  /** Set `prompt_cache_key` (false: fingerprints only feed upstream affinity). */
  readonly enabled: boolean;
  readonly shardRpm: number;
  readonly minPromptTokens: number;
  readonly headChars: number;
  /** Gateway instances sharing the traffic: the local rate is multiplied by it. */
  readonly instances: number;
  /** Fingerprints tracked at most (the oldest are forgotten first). */
  readonly maxFingerprints?: number;
  readonly now?: () => number;
}

export interface PrefixSteering {
  /**
   * The route of a chat or responses request, or undefined when the prompt is too short to be
   * cached (nothing is hashed then) or the endpoint takes no `prompt_cache_key`.
   */
  route(shape: UsageShape | undefined, body: Record<string, unknown>, inputTokens: number): PrefixRoute | undefined;
  /** The shards a fingerprint uses now (tests, bench). */
  shardsOf(fingerprint: string): number;
}

const WINDOW_MS = 60_000;

/** A sliding-window rate: the current minute plus the previous one weighted by how much of it still overlaps. */
interface Rate {
  windowStart: number;
  current: number;
  previous: number;
  turn: number;
}

export function createPrefixSteering(options: PrefixSteeringOptions): PrefixSteering {
  const now = options.now ?? Date.now;
  const maxFingerprints = options.maxFingerprints ?? 10_000;
  const rates = new Map<string, Rate>();

  const rpmOf = (rate: Rate, at: number): number => {
    const elapsed = at - rate.windowStart;
    if (elapsed >= 2 * WINDOW_MS) {
      rate.windowStart = at;
      rate.previous = rate.current = 0;
    } else if (elapsed >= WINDOW_MS) {
      rate.windowStart += WINDOW_MS;
      rate.previous = rate.current;
      rate.current = 0;
    }
    const overlap = 1 - (at - rate.windowStart) / WINDOW_MS;
    return rate.current + rate.previous * overlap;
  };
  const shardCount = (rpm: number): number => Math.max(1, Math.ceil((rpm * options.instances) / options.shardRpm));

  const count = (fingerprint: string): number => {
    const at = now();
    let rate = rates.get(fingerprint);
    if (!rate) {
      if (rates.size >= maxFingerprints) {
        const oldest = rates.keys().next().value;
        if (oldest !== undefined) rates.delete(oldest);
      }
      rates.set(fingerprint, (rate = { windowStart: at, current: 0, previous: 0, turn: 0 }));
    }
    rate.current++;
    const shards = shardCount(rpmOf(rate, at));
    return rate.turn++ % shards;
  };

  return {
    route(shape, body, inputTokens) {
      if ((shape !== 'chat' && shape !== 'responses') || inputTokens < options.minPromptTokens) return undefined;
      const fingerprint = fingerprintOf(shape, body, options.headChars);
      const own = body.prompt_cache_key;
      if (!options.enabled || (own !== undefined && own !== null)) return { fingerprint, promptCacheKey: undefined };
      return { fingerprint, promptCacheKey: `tg-${fingerprint}-${count(fingerprint)}` };
    },
    shardsOf(fingerprint) {
      const rate = rates.get(fingerprint);
      return rate ? shardCount(rpmOf(rate, now())) : 1;
    },
  };
}
