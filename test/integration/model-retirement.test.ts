// Issue 15: model retirement. Before a catalogue model's shutdown_date its answers carry sunset
// and x-tollgate-model-deprecated and a counter by key shows who calls it; after it the model is
// refused with OpenAI's model_not_found naming the successor, or (per model or per key) served by
// the successor: limited and priced as it, with x-tollgate-model-routed.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { nanoOf, parseSamples, sumOf } from '../helpers/prom-text.js';

const SUCCESSOR = 'gpt-4.1-nano';
const ROUTING_KEY = 'tg-retire-routing-0123456789';
let upstream: FakeUpstream;
let gw: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  gw = await startGateway({
    upstreamUrl: upstream.url,
    config: {
      models: {
        catalogue: [
          // Priced 100 times the successor: a routed request must cost the successor's price.
          { name: 'gpt-old-routed', price_per_1m: { input: 10, output: 40 }, shutdown_date: '2020-01-01', successor: SUCCESSOR, on_shutdown: 'route_to_successor' },
          { name: 'gpt-old-rejected', price_per_1m: { input: 10, output: 40 }, shutdown_date: '2020-01-01', successor: SUCCESSOR },
          { name: 'gpt-sunsetting', price_per_1m: { input: 0.1, output: 0.4 }, shutdown_date: '2099-01-01', successor: SUCCESSOR },
        ],
      },
      keys: [
        { id: 'test-key', key: CLIENT_KEY, tier: 'tier-5', limits: { models: { [SUCCESSOR]: { rpm: 3 } } } },
        { id: 'router', key: ROUTING_KEY, tier: 'tier-5', on_shutdown: 'route_to_successor' },
      ],
    },
  });
});
afterAll(async () => {
  await gw?.close();
  await upstream?.close();
});
beforeEach(() => upstream.reset());

const ask = (model: string, apiKey = CLIENT_KEY) =>
  gw.client({ apiKey }).chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }).withResponse();
const scrape = async () => parseSamples(await (await fetch(`${gw.origin}/metrics`)).text());
const sentModel = () => (JSON.parse((upstream.requests.at(-1)?.body ?? Buffer.from('{}')).toString('utf8')) as { model?: string }).model;

describe('model retirement', () => {
  it('routes a model past its shutdown date to its successor: asked, limited and priced as the successor', async () => {
    const { data, response } = await ask('gpt-old-routed');
    expect(response.headers.get('x-tollgate-model-routed')).toBe(`gpt-old-routed -> ${SUCCESSOR}`);
    expect(sentModel()).toBe(SUCCESSOR);
    expect(data.model).toBe(SUCCESSOR);
    const samples = await scrape();
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { model: 'gpt-old-routed' })).toBe(0);
    const used = (data.usage?.prompt_tokens ?? 0) * 100 + (data.usage?.completion_tokens ?? 0) * 400;
    expect(nanoOf(samples, 'tollgate_cost_usd_total', { key: 'test-key', model: SUCCESSOR })).toBe(used);
    // The successor's per-model limit (3 RPM) counts the routed requests.
    await ask(SUCCESSOR);
    await ask('gpt-old-routed');
    expect(await ask('gpt-old-routed').catch((e: unknown) => e)).toBeInstanceOf(OpenAI.RateLimitError);
  });

  it('refuses a model past its shutdown date with model_not_found naming the successor, unless the key routes', async () => {
    const refused = await ask('gpt-old-rejected').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
    const error = (refused as InstanceType<typeof OpenAI.NotFoundError>).error as Record<string, unknown>;
    expect(error).toEqual({
      message: `The model \`gpt-old-rejected\` was shut down on 2020-01-01; use \`${SUCCESSOR}\` instead.`,
      type: 'invalid_request_error',
      param: null,
      code: 'model_not_found',
    });
    expect(upstream.requests).toHaveLength(0);
    const { response } = await ask('gpt-old-rejected', ROUTING_KEY);
    expect(response.headers.get('x-tollgate-model-routed')).toBe(`gpt-old-rejected -> ${SUCCESSOR}`);
  });

  it('serves a model before its shutdown date as itself, says it is going away, and counts who calls it', async () => {
    const { data, response } = await ask('gpt-sunsetting', ROUTING_KEY);
    expect(sentModel()).toBe('gpt-sunsetting');
    expect(data.model).toBe('gpt-sunsetting');
    expect(response.headers.get('sunset')).toBe('Thu, 01 Jan 2099 00:00:00 GMT');
    expect(response.headers.get('x-tollgate-model-deprecated')).toBe(`gpt-sunsetting; shutdown=2099-01-01; successor=${SUCCESSOR}`);
    expect(response.headers.get('x-tollgate-model-routed')).toBeNull();
    expect(sumOf(await scrape(), 'tollgate_deprecated_model_requests_total', { key: 'router', model: 'gpt-sunsetting' })).toBe(1);
  });
});

describe('shutdown dates learned from the upstream’s GET /v1/models', () => {
  const PAST_S = Date.parse('2020-01-01T00:00:00Z') / 1000;
  let fake: FakeUpstream;
  let learner: TestGateway;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    // Reported before the gateway starts: its first read, at start, learns them.
    fake.models([
      { id: 'gpt-learned-future', object: 'model', created: 0, owned_by: 'system', shutdown_date: '2099-06-30' },
      { id: 'gpt-learned-past', object: 'model', created: 0, owned_by: 'system', shutdown_at: PAST_S },
      // Azure OpenAI's shape; named by its alias.
      { id: 'learned-routed-alias', object: 'model', created: 0, owned_by: 'system', deprecation: { fine_tune: PAST_S, inference: PAST_S } },
      { id: 'gpt-configured', object: 'model', created: 0, owned_by: 'system', shutdown_date: '2020-01-01' },
      { id: 'not-in-the-catalogue', object: 'model', created: 0, owned_by: 'system', shutdown_date: '2020-01-01' },
    ]);
    learner = await startGateway({
      upstreamUrl: fake.url,
      config: {
        models: {
          upstream_refresh_ms: 100,
          catalogue: [
            { name: 'gpt-learned-future', successor: SUCCESSOR },
            { name: 'gpt-learned-past', successor: SUCCESSOR },
            { name: 'gpt-learned-routed', aliases: ['learned-routed-alias'], successor: SUCCESSOR, on_shutdown: 'route_to_successor' },
            // The configured date wins over the upstream's.
            { name: 'gpt-configured', shutdown_date: '2099-01-01', successor: SUCCESSOR },
          ],
        },
        keys: [{ id: 'test-key', key: CLIENT_KEY, tier: 'tier-5' }],
      },
    });
  });
  afterAll(async () => {
    await learner?.close();
    await fake?.close();
  });
  const askLearner = (model: string) =>
    learner.client().chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }).withResponse();
  async function until(condition: () => Promise<boolean>): Promise<void> {
    while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  it('says a model is going away, refuses or routes it after the date, as the upstream reports; the configured date wins', async () => {
    await until(async () => (await askLearner('gpt-learned-future')).response.headers.get('sunset') !== null);
    const { response } = await askLearner('gpt-learned-future');
    expect(response.headers.get('sunset')).toBe('Tue, 30 Jun 2099 00:00:00 GMT');
    expect(response.headers.get('x-tollgate-model-deprecated')).toBe(`gpt-learned-future; shutdown=2099-06-30; successor=${SUCCESSOR}`);

    const refused = await askLearner('gpt-learned-past').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
    expect((refused as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({
      message: `The model \`gpt-learned-past\` was shut down on 2020-01-01; use \`${SUCCESSOR}\` instead.`,
      code: 'model_not_found',
    });

    const routed = await askLearner('gpt-learned-routed');
    expect(routed.response.headers.get('x-tollgate-model-routed')).toBe(`gpt-learned-routed -> ${SUCCESSOR}`);
    expect(routed.data.model).toBe(SUCCESSOR);

    const configured = await askLearner('gpt-configured');
    expect(configured.response.headers.get('sunset')).toBe('Thu, 01 Jan 2099 00:00:00 GMT');
    expect(configured.response.headers.get('x-tollgate-model-routed')).toBeNull();
  });

  it('forgets a date the upstream no longer reports, and keeps what it learned while the upstream fails', async () => {
    fake.always({ status: 500, only: '/v1/models' });
    const reads = () => fake.requests.filter((r) => r.path === '/v1/models').length;
    const before = reads();
    await until(async () => reads() >= before + 2);
    expect((await askLearner('gpt-learned-future')).response.headers.get('sunset')).toBe('Tue, 30 Jun 2099 00:00:00 GMT');
    fake.always(undefined);
    fake.models(undefined);
    await until(async () => (await askLearner('gpt-learned-future')).response.headers.get('sunset') === null);
    expect((await askLearner('gpt-learned-past')).response.headers.get('x-tollgate-model-deprecated')).toBeNull();
  });
});
