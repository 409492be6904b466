/**
 * `npm run bench:caching`: what prefix steering and prefix affinity do for cached input, in a
 * SIMULATION of documented behaviour (simulated time, no network, deterministic seed). It runs
 * tollgate's own steering (src/steering) and target choice (src/upstream/targets.ts) against
 * models of the upstreams:
 *
 * 1. Steering, OpenAI's prompt cache as documented: a request goes to one of M cache machines by
 *    a hash of its first ~256 tokens combined with `prompt_cache_key`; a machine keeps the
 *    prefixes it served for 5 minutes after their last use; above 15 requests per minute for one
 *    prefix + key, requests overflow to other machines and miss. Cached tokens are counted in
 *    128-token steps from 1024, as billed. Workload: many apps sharing one 2,000-token system
 *    prompt, each request with its own ~100-token question, at a few hundred requests per minute.
 * 2. Affinity: 3 self-hosted targets, each with its own prefix cache (LRU of a few prefixes, as
 *    KV-cache memory allows); many apps with their own 2,000-token system prompts (skewed
 *    popularity). Round robin vs tollgate's rendezvous hashing with bounded load.
 *
 *   npx tsx bench/caching.ts [--minutes 30] [--rpm 300] [--seed 1]
 */
import { parseArgs } from 'node:util';
import { createPrefixSteering } from '../src/steering/steering.js';
import { fingerprintOf } from '../src/steering/fingerprint.js';
import { pickTarget } from '../src/upstream/targets.js';
import { prng } from '../test/helpers/prng.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rpm: { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
  },
});
const MINUTES = Number(values.minutes);
const RPM = Number(values.rpm);
const SEED = Number(values.seed);

/** Poisson arrival times (ms) at `rpm` over `minutes`. */
function arrivals(random: () => number, rpm: number, minutes: number): number[] {
  const times: number[] = [];
  const meanGapMs = 60_000 / rpm;
  for (let t = -Math.log(1 - random()) * meanGapMs; t < minutes * 60_000; t += -Math.log(1 - random()) * meanGapMs) times.push(t);
  return times;
}

function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const SYSTEM_TOKENS = 2000;
const QUESTION_TOKENS = 100;
const systemPrompt = (name: string): string => `${name}: ${'You answer questions about our product catalogue and policies. '.repeat(130)}`.slice(0, SYSTEM_TOKENS * 4);

// ------------------------------------------------------------------ 1. steering (OpenAI model)

interface OpenAIModel {
  /** Cached tokens of one request routed by (prefix, key) at time `at`. */
  serve(prefix: string, key: string, at: number): number;
}

function openAIModel(random: () => number, machines: number): OpenAIModel {
  const caches = Array.from({ length: machines }, () => new Map<string, number>());
  const recent = new Map<string, number[]>();
  const TTL = 5 * 60_000;
  return {
    serve(prefix, key, at) {
      const route = `${prefix}|${key}`;
      // The requests the routed machine took for this prefix + key in the last minute: beyond 15,
      // the request overflows to another machine and misses, as documented.
      const times = (recent.get(route) ?? []).filter((t) => t > at - 60_000);
      recent.set(route, times);
      if (times.length >= 15) return 0;
      times.push(at);
      const cache = caches[hash32(route) % machines] as Map<string, number>;
      const hit = (cache.get(prefix) ?? -Infinity) > at - TTL;
      cache.set(prefix, at);
      if (!hit) return 0;
      const shared = SYSTEM_TOKENS;
      return shared < 1024 ? 0 : Math.floor(shared / 128) * 128;
    },
  };
}

function steeringRun(mode: 'none' | 'per-app' | 'tollgate'): { share: number; requests: number; keys: number } {
  const random = prng(SEED);
  const model = openAIModel(random, 64);
  let now = 0;
  const steering = createPrefixSteering({ enabled: true, shardRpm: 12, minPromptTokens: 1024, headChars: 1024, instances: 1, now: () => now });
  const system = systemPrompt('shared');
  const apps = 20;
  let cached = 0;
  let input = 0;
  const keys = new Set<string>();
  for (const at of arrivals(random, RPM, MINUTES)) {
    now = at;
    const app = Math.floor(random() * apps);
    const body = { model: 'gpt-4.1-nano', messages: [{ role: 'system', content: system }, { role: 'user', content: `app ${app} question ${random()}` }] };
    const key = mode === 'none' ? '' : mode === 'per-app' ? `app-${app}` : (steering.route('chat', body, SYSTEM_TOKENS + QUESTION_TOKENS)?.promptCacheKey ?? '');
    keys.add(key);
    cached += model.serve('shared-system-prompt', key, at);
    input += SYSTEM_TOKENS + QUESTION_TOKENS;
  }
  return { share: cached / input, requests: input / (SYSTEM_TOKENS + QUESTION_TOKENS), keys: keys.size };
}

// ------------------------------------------------------------------ 2. affinity (3 targets)

function affinityRun(mode: 'round-robin' | 'affinity'): { share: number; spread: number[] } {
  const random = prng(SEED + 1);
  const targets = ['http://replica-0/v1', 'http://replica-1/v1', 'http://replica-2/v1'];
  const capacity = 8; // prefixes each replica's KV cache holds
  const caches = targets.map(() => new Map<string, true>());
  const apps = Array.from({ length: 24 }, (_, i) => systemPrompt(`app-${i}`));
  // Skewed popularity (Zipf, s = 1).
  const weights = apps.map((_, i) => 1 / (i + 1));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const pickApp = (): number => {
    let r = random() * totalWeight;
    for (let i = 0; i < weights.length; i++) if ((r -= weights[i] as number) <= 0) return i;
    return weights.length - 1;
  };
  const durationMs = 3000;
  const inflight: { end: number; target: number }[] = [];
  const loads = targets.map(() => 0);
  const spread = targets.map(() => 0);
  let turn = 0;
  let cached = 0;
  let input = 0;
  for (const at of arrivals(random, RPM, MINUTES)) {
    while (inflight.length > 0 && (inflight[0] as { end: number }).end <= at) {
      const done = (inflight.shift() as { target: number }).target;
      loads[done] = (loads[done] ?? 0) - 1;
    }
    const app = pickApp();
    const body = { model: 'm', messages: [{ role: 'system', content: apps[app] }, { role: 'user', content: `question ${random()}` }] };
    const fingerprint = fingerprintOf('chat', body, 1024);
    const target = mode === 'round-robin' ? turn++ % targets.length : pickTarget(fingerprint, targets, loads, 1.25, turn++);
    const cache = caches[target] as Map<string, true>;
    if (cache.has(fingerprint)) {
      cache.delete(fingerprint);
      cached += SYSTEM_TOKENS;
    } else if (cache.size >= capacity) {
      cache.delete(cache.keys().next().value as string);
    }
    cache.set(fingerprint, true);
    input += SYSTEM_TOKENS + QUESTION_TOKENS;
    loads[target] = (loads[target] ?? 0) + 1;
    spread[target] = (spread[target] ?? 0) + 1;
    inflight.push({ end: at + durationMs, target });
  }
  return { share: cached / input, spread };
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const none = steeringRun('none');
const perApp = steeringRun('per-app');
const steered = steeringRun('tollgate');
const rr = affinityRun('round-robin');
const affinity = affinityRun('affinity');

process.stdout.write(`tollgate caching bench — a SIMULATION of documented behaviour (simulated time, seed ${SEED})

1. Prefix steering vs OpenAI's documented prompt-cache routing
   64 cache machines; route = hash(first ~256 tokens + prompt_cache_key); a machine keeps a prefix
   5 min after its last use; > 15 rpm per prefix + key overflows and misses.
   20 apps sharing one 2,000-token system prompt, ${RPM} rpm for ${MINUTES} min (${none.requests} requests).

   cached-token share, no prompt_cache_key (as clients send today) : ${pct(none.share)}
   cached-token share, each app sets its own prompt_cache_key     : ${pct(perApp.share)}
   cached-token share, tollgate steering (shard_rpm 12)            : ${pct(steered.share)}   (${steered.keys} keys used)

2. Prefix affinity over 3 upstream targets (each its own LRU prefix cache of 8 prefixes)
   24 apps with their own 2,000-token system prompts (Zipf popularity), ${RPM} rpm, 3 s per request.

   cached-token share, round robin                     : ${pct(rr.share)}   requests per target ${rr.spread.join(' / ')}
   cached-token share, affinity (rendezvous, bounded)  : ${pct(affinity.share)}   requests per target ${affinity.spread.join(' / ')}
`);
