// Issue 15: each upstream's ceiling (what its credential's organisation allows) is shared by every
// key routed there and kept exactly across gateway instances on one Redis; a request goes to an
// upstream with headroom, waits within the key's max_wait_ms, else meets tollgate's 429; the
// provider's own x-ratelimit-remaining-* tighten a ceiling, never loosen it.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { parseSamples, sumOf } from '../helpers/prom-text.js';
import { uniquePrefix } from '../helpers/redis.js';

const MODEL = 'gpt-4.1-nano';
const KEY = 'tg-ceiling-key-0123456789';
const WAITING_KEY = 'tg-ceiling-wait-0123456789';

const ask = (gw: TestGateway, key = KEY) =>
  gw.client({ apiKey: key }).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });

describe('ceilings over two instances on one Redis', () => {
  const fakes: FakeUpstream[] = [];
  const gateways: TestGateway[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 2; i++) fakes.push(await startFakeUpstream());
    const prefix = uniquePrefix('ceilings');
    for (let i = 0; i < 2; i++) {
      gateways.push(
        await startGateway({
          upstreamUrl: 'http://127.0.0.1:9/v1',
          redisUrl: inject('redisUrl'),
          config: {
            upstreams: [
              { id: 'a', url: (fakes[0] as FakeUpstream).url, ceiling: { rpm: 3 } },
              { id: 'b', url: (fakes[1] as FakeUpstream).url, ceiling: { rpm: 2, tpm: 1_000_000 } },
            ],
            // A loaded machine must not turn a slow Redis into 503s: the figures are exact or nothing.
            limits: { key_prefix: prefix, redis_timeout_ms: 5000, organization: { tier: 'tier-5', name: 'acme-openai' } },
            keys: [{ id: 'busy', key: KEY, tier: 'tier-5' }],
          },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const gw of gateways) await gw.close();
    for (const fake of fakes) await fake.close();
  });

  it('admits exactly the sum of the ceilings, each upstream within its own, and names the gateway in the 429', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => ask(gateways[i % 2] as TestGateway).catch((e: unknown) => e)));
    const refused = answers.filter((a) => a instanceof OpenAI.RateLimitError);
    expect(refused).toHaveLength(7);
    expect(answers.filter((a) => !(a instanceof Error))).toHaveLength(5);
    expect(fakes.map((f) => f.requests.length)).toEqual([3, 2]);
    const error = refused[0] as InstanceType<typeof OpenAI.RateLimitError>;
    expect(error.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    expect(String((error.error as { message: string }).message)).toMatch(/^Rate limit reached for gpt-4\.1-nano in organization acme-openai on requests per min \(RPM\): Limit [23], Used [23], Requested 1\./);
    expect(error.headers?.get('retry-after-ms')).toMatch(/^\d+$/);
    const metrics = parseSamples(await (await fetch(`${(gateways[0] as TestGateway).origin}/metrics`)).text());
    expect(sumOf(metrics, 'tollgate_upstream_ceiling_refusals_total')).toBeGreaterThan(0);
  });
});

describe('waiting for headroom, and calibration from the provider’s headers', () => {
  let fake: FakeUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    gw = await startGateway({
      upstreamUrl: 'http://127.0.0.1:9/v1',
      redisUrl: inject('redisUrl'),
      config: {
        upstreams: [{ id: 'only', url: fake.url, ceiling: { models: { [MODEL]: { rpm: 12 } } } }],
        limits: { key_prefix: uniquePrefix('calibrate'), redis_timeout_ms: 5000 },
        keys: [
          { id: 'plain', key: KEY, tier: 'tier-5' },
          { id: 'patient', key: WAITING_KEY, tier: 'tier-5', max_wait_ms: 10_000 },
        ],
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await fake?.close();
  });
  const drift = async (): Promise<number> =>
    sumOf(parseSamples(await (await fetch(`${gw.origin}/metrics`)).text()), 'tollgate_upstream_calibration_drift', { upstream: 'only', limit: 'requests' });

  it('tightens the ceiling to what the provider says is left (and reports the drift); a patient key waits for room', async () => {
    // Others use the organisation too: the provider has 1 request left where tollgate counted 11.
    fake.script({ headers: { 'x-ratelimit-remaining-requests': '1' } });
    await ask(gw);
    expect(await drift()).toBe(11 - 1);
    let admitted = 0;
    let refusal: unknown;
    for (let i = 0; i < 10 && refusal === undefined; i++) {
      await ask(gw).then(
        () => admitted++,
        (e: unknown) => (refusal = e),
      );
    }
    expect(refusal).toBeInstanceOf(OpenAI.RateLimitError);
    // 1 left, and what refilled meanwhile (one every 5 s): far below the 11 counted before.
    expect(admitted).toBeGreaterThanOrEqual(1);
    expect(admitted).toBeLessThan(5);
    // The same ceiling, with max_wait_ms: the request waits for the refill instead of failing.
    const waited = await ask(gw, WAITING_KEY);
    expect(waited.choices[0]?.message.content).toBeTruthy();
  });

  it('never loosens past the configured ceiling when the provider reports more', async () => {
    fake.script({ headers: { 'x-ratelimit-remaining-requests': '100000' } });
    await ask(gw, WAITING_KEY);
    expect(await drift()).toBeLessThan(0);
  });
});

describe('calibration from the limit an upstream 429 names', () => {
  const RATE = `Rate limit reached for ${MODEL} in organization org-elsewhere on`;
  const limited = (type: 'requests' | 'tokens', figures: string) => ({
    status: 429,
    json: { error: { message: `${RATE} ${figures}. Please try again in 1s.`, type, param: null, code: 'rate_limit_exceeded' } },
  });
  const started: { gw: TestGateway; fake: FakeUpstream }[] = [];
  afterAll(async () => {
    for (const { gw, fake } of started) {
      await gw.close();
      await fake.close();
    }
  });
  /** A gateway with one upstream of this ceiling (no retries: the 429 is the client's). */
  async function setup(ceiling: { rpm?: number; tpm?: number }): Promise<{ gw: TestGateway; fake: FakeUpstream }> {
    const fake = await startFakeUpstream();
    const gw = await startGateway({
      upstreamUrl: 'http://127.0.0.1:9/v1',
      redisUrl: inject('redisUrl'),
      config: {
        upstreams: [{ id: 'only', url: fake.url, ceiling }],
        retry: { max_attempts: 1 },
        limits: { key_prefix: uniquePrefix('calibrate-429'), redis_timeout_ms: 5000 },
        keys: [{ id: 'plain', key: KEY, tier: 'tier-5' }],
      },
    });
    started.push({ gw, fake });
    return { gw, fake };
  }
  const gauge = async (gw: TestGateway, name: string, limit: string): Promise<number | undefined> => {
    const samples = parseSamples(await (await fetch(`${gw.origin}/metrics`)).text());
    return samples.some((s) => s.name === name && s.labels.limit === limit) ? sumOf(samples, name, { upstream: 'only', limit }) : undefined;
  };
  const refusalOf = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.RateLimitError>,
    );

  it('a 429 naming tokens empties the token bucket to what the provider had left, and leaves the request bucket alone', async () => {
    const { gw, fake } = await setup({ rpm: 1000, tpm: 60 });
    fake.script(limited('tokens', 'tokens per min (TPM): Limit 60, Used 60, Requested 20'));
    const upstream429 = await refusalOf(ask(gw));
    // The upstream's own 429 reaches the client intact after calibration read it.
    expect(upstream429).toBeInstanceOf(OpenAI.RateLimitError);
    expect(upstream429?.error).toMatchObject({ type: 'tokens', message: expect.stringContaining('org-elsewhere') as unknown });
    // Tollgate had counted all 60 (the refused request's tokens go back); the provider had none left.
    expect(await gauge(gw, 'tollgate_upstream_calibration_drift', 'tokens')).toBe(60);
    expect(await gauge(gw, 'tollgate_upstream_calibration_drift', 'requests')).toBeLessThan(0);
    // The next request meets tollgate's own 429 on tokens (one token a second refills): the upstream sees nothing.
    const ours = await refusalOf(ask(gw));
    expect(ours).toBeInstanceOf(OpenAI.RateLimitError);
    expect(ours?.error).toMatchObject({ type: 'tokens', message: expect.stringContaining('organization gateway on tokens per min') as unknown });
    expect(fake.requests).toHaveLength(1);
  });

  it('a 429 naming requests empties the request bucket', async () => {
    const { gw, fake } = await setup({ rpm: 3 });
    fake.script(limited('requests', 'requests per min (RPM): Limit 3, Used 3, Requested 1'));
    expect(await refusalOf(ask(gw))).toMatchObject({ error: { type: 'requests', message: expect.stringContaining('org-elsewhere') as unknown } });
    expect(await gauge(gw, 'tollgate_upstream_calibration_drift', 'requests')).toBe(2);
    expect(await gauge(gw, 'tollgate_upstream_calibration_drift', 'tokens')).toBeUndefined();
    const ours = await refusalOf(ask(gw));
    expect(ours?.error).toMatchObject({ type: 'requests', message: expect.stringContaining('organization gateway on requests per min') as unknown });
    expect(fake.requests).toHaveLength(1);
  });

  it('a 429 reporting more headroom than the ceiling never loosens it past the configured figure', async () => {
    const { gw, fake } = await setup({ rpm: 3 });
    fake.script(limited('requests', 'requests per min (RPM): Limit 10000, Used 0, Requested 1'));
    await refusalOf(ask(gw));
    expect(await gauge(gw, 'tollgate_upstream_calibration_drift', 'requests')).toBeLessThan(0);
    // The ceiling's 3 stand: two more reach the upstream, the fourth is tollgate's 429.
    for (let i = 0; i < 2; i++) await ask(gw);
    expect(await refusalOf(ask(gw))).toMatchObject({ error: { type: 'requests', message: expect.stringContaining('organization gateway') as unknown } });
    expect(fake.requests).toHaveLength(3);
  });

  it('a 429 whose body is cut reaches the client as a failed answer, calibrates nothing, and the next request goes through', async () => {
    const { gw, fake } = await setup({ rpm: 3 });
    fake.script({ ...limited('requests', 'requests per min (RPM): Limit 3, Used 3, Requested 1'), cutAfter: 0 });
    const failed = await refusalOf(ask(gw));
    expect(failed).toBeInstanceOf(OpenAI.APIError);
    expect(await gauge(gw, 'tollgate_upstream_calibration_drift', 'requests')).toBeLessThan(0);
    await ask(gw);
    expect(fake.requests).toHaveLength(2);
  });

  it('a client leaving while a 429 body is read ends the attempt and the upstream request', async () => {
    const { gw, fake } = await setup({ rpm: 3 });
    fake.script({ ...limited('requests', 'requests per min (RPM): Limit 3, Used 3, Requested 1'), stall: true });
    const controller = new AbortController();
    const asked = refusalOf(gw.client({ apiKey: KEY }).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }, { signal: controller.signal }));
    await until(() => fake.requests.length === 1);
    controller.abort();
    expect(await asked).toBeInstanceOf(OpenAI.APIUserAbortError);
    await (fake.requests[0] as { finished: Promise<void> }).finished;
    expect(fake.requests[0]?.aborted).toBe(true);
    // The attempt ended (it is counted): nothing waits on the body that will never come.
    await until(async () => sumOf(parseSamples(await (await fetch(`${gw.origin}/metrics`)).text()), 'tollgate_upstream_attempts_total', { upstream: 'only', outcome: '429' }) === 1);
  });
});

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
}
