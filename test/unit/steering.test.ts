import { describe, expect, it } from 'vitest';
import { fingerprintOf, promptHead } from '../../src/steering/fingerprint.js';
import { createPrefixSteering } from '../../src/steering/steering.js';
import { pickTarget, rendezvousOrder } from '../../src/upstream/targets.js';

const system = 'x'.repeat(5000);
const chat = (user: string, extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'system', content: system }, { role: 'user', content: user }], ...extra });

describe('prompt fingerprint', () => {
  it('covers the head in the provider’s order and nothing past head_chars', () => {
    expect(fingerprintOf('chat', chat('a'), 1024)).toBe(fingerprintOf('chat', chat('b'), 1024));
    expect(fingerprintOf('chat', chat('a', { tools: [{ type: 'function' }] }), 1024)).not.toBe(fingerprintOf('chat', chat('a'), 1024));
    expect(promptHead('chat', chat('a'), 1024)).toHaveLength(1024);
    const responses = { input: [{ role: 'developer', content: 'd' }, { role: 'user', content: 'u' }], instructions: 'i', text: { format: { type: 'json_schema' } } };
    expect(promptHead('responses', responses, 1024)).toBe('{"type":"json_schema"}\u0000i\u0000{"role":"developer","content":"d"}\u0000{"role":"user","content":"u"}\u0000');
  });
});

describe('prefix steering', () => {
  const make = (now: () => number, enabled = true) => createPrefixSteering({ enabled, shardRpm: 10, minPromptTokens: 1024, headChars: 1024, instances: 1, now });

  it('does nothing below the cacheable size, nor for endpoints without prompt_cache_key', () => {
    const steering = make(() => 0);
    expect(steering.route('chat', chat('a'), 1023)).toBeUndefined();
    expect(steering.route('embeddings', chat('a'), 5000)).toBeUndefined();
    expect(steering.route('chat', chat('a', { prompt_cache_key: 'mine' }), 5000)).toEqual({ fingerprint: expect.any(String), promptCacheKey: undefined });
    expect(make(() => 0, false).route('chat', chat('a'), 5000)?.promptCacheKey).toBeUndefined();
  });

  it('keeps every shard under shard_rpm, and closes shards when the rate falls', () => {
    let now = 0;
    const steering = make(() => now);
    const perShard = new Map<string, number>();
    // 60 requests per minute for two minutes, evenly spaced.
    for (let i = 0; i < 120; i++) {
      now = i * 1000;
      const key = steering.route('chat', chat(`q${i}`), 5000)?.promptCacheKey as string;
      if (i >= 60) perShard.set(key, (perShard.get(key) ?? 0) + 1);
    }
    // 60 rpm / 10: six shards (a seventh while the sliding estimate counts the request itself).
    expect(perShard.size).toBeGreaterThanOrEqual(6);
    expect(perShard.size).toBeLessThanOrEqual(7);
    for (const count of perShard.values()) expect(count).toBeLessThanOrEqual(10);
    const fingerprint = fingerprintOf('chat', chat('q'), 1024);
    expect(steering.shardsOf(fingerprint)).toBeGreaterThanOrEqual(6);
    now += 3 * 60_000;
    expect(steering.shardsOf(fingerprint)).toBe(1);
  });
});

describe('target choice', () => {
  const ids = ['a', 'b', 'c'];
  it('is stable per fingerprint and moves only the removed target’s share', () => {
    const before = new Map<string, string>();
    for (let i = 0; i < 300; i++) before.set(`fp${i}`, ids[rendezvousOrder(`fp${i}`, ids)[0] as number] as string);
    const counts = ids.map((id) => [...before.values()].filter((v) => v === id).length);
    for (const count of counts) expect(count).toBeGreaterThan(60);
    const two = ['a', 'c'];
    for (const [fp, target] of before) if (target !== 'b') expect(two[rendezvousOrder(fp, two)[0] as number]).toBe(target);
  });

  it('falls back in rank order above the bounded load, and picks the least loaded without a fingerprint', () => {
    const order = rendezvousOrder('fp', ids);
    const first = order[0] as number;
    expect(pickTarget('fp', ids, [0, 0, 0], 1.25, 0)).toBe(first);
    const loads = [4, 4, 4];
    loads[first] = 9;
    expect(pickTarget('fp', ids, loads, 1.25, 0)).toBe(order[1]);
    expect(pickTarget(undefined, ids, [3, 1, 2], 1.25, 0)).toBe(1);
    expect([0, 1, 2].map((turn) => pickTarget(undefined, ids, [0, 0, 0], 1.25, turn))).toEqual([0, 1, 2]);
  });
});
