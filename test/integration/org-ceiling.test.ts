import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { uniquePrefix } from '../helpers/redis.js';

// The organisation ceiling: the gateway's own tier caps the sum of all keys per model, so
// clients meet tollgate's 429 (with its headers) instead of OpenAI's.

const KEY_A = 'tg-org-key-a-0123456789';
const KEY_B = 'tg-org-key-b-0123456789';
let upstream: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    redisUrl: inject('redisUrl'),
    config: {
      limits: { key_prefix: uniquePrefix('org'), organization: { tier: 'free', name: 'acme-openai' } },
      keys: [
        { id: 'app-a', key: KEY_A, tier: 'tier-5' },
        { id: 'app-b', key: KEY_B, tier: 'tier-5' },
      ],
    },
  });
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

const ask = (key: string) =>
  gateway.client({ apiKey: key }).chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });

describe('organisation ceiling', () => {
  it('keeps the sum of all keys under the organisation tier (free: 3 RPM) and names the organisation', async () => {
    await ask(KEY_A);
    await ask(KEY_B);
    await ask(KEY_A);
    const refused = await ask(KEY_B).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const error = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(error.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded', param: null });
    expect(String((error.error as { message: string }).message)).toMatch(
      /^Rate limit reached for gpt-4\.1-nano in organization acme-openai on requests per min \(RPM\): Limit 3, Used 3, Requested 1\. Please try again in /,
    );
    expect(error.headers?.get('retry-after-ms')).toMatch(/^\d+$/);
    expect(upstream.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(3);
  });
});
