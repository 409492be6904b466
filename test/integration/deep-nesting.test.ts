// Issue 14 item 9: a 100k-level JSON value in any field of a body used to reach a recursive walker
// (the response cache key's stableStringify, the prompt fingerprint's JSON.stringify) and answer
// 500 "Maximum call stack size exceeded". Over-deep bodies are refused with 400 when parsed;
// nothing reaches the upstream and the gateway keeps serving.
import { describe, expect, it } from 'vitest';
import { CLIENT_KEY, useGateway } from '../helpers/gateway.js';
import { expectEnvelope, expectStillServing, postJson } from '../helpers/openai-errors.js';

const MODEL = 'gpt-4.1-nano';
const CACHED = 'tg-deep-cached-0123456789abcdef';
const PLAIN = 'tg-deep-plain-0123456789abcdef';

const fx = useGateway({
  config: {
    keys: [
      { id: 'test-key', key: CLIENT_KEY, tier: 'tier-1' },
      { id: 'cached', key: CACHED, tier: 'tier-1', cache: { ttl_s: 60 } },
      { id: 'plain', key: PLAIN, tier: 'tier-1' },
    ],
    // Steering fingerprints every prompt, however short.
    caching: { prefix_steering: { enabled: true, min_prompt_tokens: 1 } },
  },
});

/** `levels` nested arrays around a string, written as text (JSON.stringify would overflow too). */
const deepArrayText = (levels: number): string => '['.repeat(levels) + '"x"' + ']'.repeat(levels);
/** The same as a value, built iteratively (for bodies at the accepted depth). */
function nested(levels: number): unknown {
  let value: unknown = 'x';
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

const FIELDS: Record<string, (deep: string) => string> = {
  metadata: (deep) => `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"metadata":{"a":${deep}}}`,
  'message content': (deep) => `{"model":"${MODEL}","messages":[{"role":"user","content":${deep}}]}`,
  tools: (deep) => `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"tools":${deep}}`,
  'image_url (a field the estimate skips)': (deep) =>
    `{"model":"${MODEL}","messages":[{"role":"user","content":[{"type":"image_url","image_url":${deep}}]}]}`,
};

describe('deep nesting → 400, never 500', () => {
  for (const [field, body] of Object.entries(FIELDS)) {
    it(`100k levels in ${field}: 400 json_too_deep for a cached and an uncached key`, async () => {
      for (const secret of [CACHED, PLAIN]) {
        const res = await postJson(`${fx.gateway.url}/chat/completions`, body(deepArrayText(100_000)), { authorization: `Bearer ${secret}` });
        expect(res.status, res.text).toBe(400);
        expect(expectEnvelope(res.body)).toMatchObject({ type: 'invalid_request_error', code: 'json_too_deep', param: null });
      }
      expect(fx.upstream.requests).toEqual([]);
      await expectStillServing(fx.gateway);
    });
  }

  it('a body nested to the accepted depth (64 levels) is served', async () => {
    // The body is level 1, metadata level 2, then 62 arrays: 64 levels in all.
    const res = await postJson(`${fx.gateway.url}/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], metadata: { a: nested(62) } }, { authorization: `Bearer ${CACHED}` });
    expect(res.status, res.text).toBe(200);
    const tooDeep = await postJson(`${fx.gateway.url}/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], metadata: { a: nested(63) } }, { authorization: `Bearer ${CACHED}` });
    expect(tooDeep.status, tooDeep.text).toBe(400);
    expect(fx.upstream.requests).toHaveLength(1);
  });
});
