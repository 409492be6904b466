// Issue 15: outlier ejection (consecutive failures, or a failure percentage over an interval,
// eject an upstream, it gets no traffic while ejected, a probe lets it back after it recovers),
// /readyz while one upstream serves each model, and Azure-kind upstreams (the `api-key` header, the v1 base path and deployment paths).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { parseSamples, sumOf } from '../helpers/prom-text.js';

const MODEL = 'gpt-4.1-nano';
const chat = (gw: TestGateway) => gw.client().chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
const chats = (fake: FakeUpstream) => fake.requests.filter((r) => r.path === '/v1/chat/completions').length;
const probes = (fake: FakeUpstream) => fake.requests.filter((r) => r.path === '/v1/models').length;

async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
}

const metric = async (gw: TestGateway, name: string, labels: Record<string, string>) =>
  sumOf(parseSamples(await (await fetch(`${gw.origin}/metrics`)).text()), name, labels);

/**
 * Two fake upstreams behind a gateway: `flaky` is preferred by weight (without ejection it would
 * take every first attempt), `steady` takes what fails over. One retry, no real backoff.
 */
function flakyAndSteady(outliers: Record<string, number>): { fakes: FakeUpstream[]; gateway: () => TestGateway } {
  const fakes: FakeUpstream[] = [];
  let gw: TestGateway;
  beforeAll(async () => {
    for (let i = 0; i < 2; i++) fakes.push(await startFakeUpstream());
    gw = await startGateway({
      upstreamUrl: 'http://127.0.0.1:9/v1',
      config: {
        upstreams: [
          { id: 'flaky', url: (fakes[0] as FakeUpstream).url, weight: 100 },
          { id: 'steady', url: (fakes[1] as FakeUpstream).url },
        ],
        retry: { max_attempts: 2, base_backoff_ms: 1 },
        outlier_detection: outliers,
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    for (const fake of fakes) await fake.close();
  });
  return { fakes, gateway: () => gw };
}

describe('outlier ejection and recovery', () => {
  const { fakes, gateway } = flakyAndSteady({ consecutive_failures: 2, base_ejection_ms: 50, max_ejection_ms: 200 });

  it('ejects an upstream answering 503 after two failures, sends it nothing while ejected, and takes it back once a probe succeeds', async () => {
    const [flaky, steady] = fakes as [FakeUpstream, FakeUpstream];
    const gw = gateway();
    flaky.always({ status: 503 });
    for (let i = 0; i < 2; i++) expect((await chat(gw)).response.headers.get('x-tollgate-upstream')).toBe('steady; attempts=2');
    expect(chats(flaky)).toBe(2);
    await until(async () => (await metric(gw, 'tollgate_upstream_healthy', { upstream: 'flaky' })) === 0);
    for (let i = 0; i < 5; i++) expect((await chat(gw)).response.headers.get('x-tollgate-upstream')).toBe('steady; attempts=1');
    expect(chats(flaky)).toBe(2);
    expect(chats(steady)).toBe(7);
    // Still down: the probes fail and it stays out; /readyz stays ready (steady serves every model).
    await until(async () => probes(flaky) >= 2);
    expect((await fetch(`${gw.origin}/readyz`)).status).toBe(200);
    expect(await metric(gw, 'tollgate_upstream_ejections_total', { upstream: 'flaky' })).toBeGreaterThanOrEqual(2);
    flaky.always(undefined);
    await until(async () => (await metric(gw, 'tollgate_upstream_healthy', { upstream: 'flaky' })) === 1);
    expect((await chat(gw)).response.headers.get('x-tollgate-upstream')).toBe('flaky; attempts=1');
  });
});

describe('ejection on the failure percentage', () => {
  // Three in a row would eject too; the flaky upstream never fails twice in a row.
  const { fakes, gateway } = flakyAndSteady({ consecutive_failures: 3, failure_percentage: 50, failure_percentage_request_volume: 6, interval_ms: 600_000, base_ejection_ms: 50, max_ejection_ms: 200 });

  it('ejects an upstream failing every other attempt once the interval has its volume, sends it nothing while ejected, and takes it back after a probe', async () => {
    const [flaky, steady] = fakes as [FakeUpstream, FakeUpstream];
    const gw = gateway();
    // Succeed, fail, succeed, fail, …: 3 of 6 (50 %), never two failures in a row; then (probes
    // included) every answer fails until the test says otherwise.
    flaky.script({}, { status: 503 }, {}, { status: 503 }, {}, { status: 503 });
    flaky.always({ status: 503 });
    for (let i = 0; i < 20 && (await metric(gw, 'tollgate_upstream_healthy', { upstream: 'flaky' })) === 1; i++) {
      const { response } = await chat(gw);
      expect(response.status).toBe(200);
    }
    expect(await metric(gw, 'tollgate_upstream_healthy', { upstream: 'flaky' })).toBe(0);
    // Ejected by the sixth attempt: the ratio, not a streak (the fourth failure would have been a streak of one).
    expect(chats(flaky)).toBe(6);
    const steadyBefore = chats(steady);
    for (let i = 0; i < 5; i++) expect((await chat(gw)).response.headers.get('x-tollgate-upstream')).toBe('steady; attempts=1');
    expect(chats(flaky)).toBe(6);
    expect(chats(steady)).toBe(steadyBefore + 5);
    await until(async () => probes(flaky) >= 1);
    flaky.always(undefined);
    await until(async () => (await metric(gw, 'tollgate_upstream_healthy', { upstream: 'flaky' })) === 1);
    expect((await chat(gw)).response.headers.get('x-tollgate-upstream')).toBe('flaky; attempts=1');
  });
});

describe('/readyz with the only upstream of a model ejected', () => {
  let fake: FakeUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    gw = await startGateway({
      upstreamUrl: fake.url,
      config: { retry: { max_attempts: 1 }, outlier_detection: { consecutive_failures: 1, base_ejection_ms: 50 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await fake?.close();
  });

  it('answers 503 while no upstream serves, and ready again after the probe', async () => {
    fake.always({ status: 503 });
    await chat(gw).catch(() => undefined);
    const down = await fetch(`${gw.origin}/readyz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ status: 'unavailable', upstreams: { default: expect.stringMatching(/^(ejected|probing)$/) as unknown } });
    fake.always(undefined);
    await until(async () => (await fetch(`${gw.origin}/readyz`)).status === 200);
  });
});

describe('Azure-kind upstreams', () => {
  const AZURE_KEY = 'azure-key-0123456789abcdef';
  let fake: FakeUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    fake = await startFakeUpstream({ apiKey: AZURE_KEY });
    gw = await startGateway({
      upstreamUrl: 'http://127.0.0.1:9/v1',
      config: {
        upstreams: [
          { id: 'azure-v1', kind: 'azure', url: `${fake.origin}/openai/v1`, api_key: AZURE_KEY, models: [MODEL] },
          { id: 'azure-deployed', kind: 'azure', url: `${fake.origin}/openai`, api_key: AZURE_KEY, deployments: { 'gpt-4.1-nano': 'nano-prod' }, api_version: '2024-10-21', models: [MODEL] },
        ],
        outlier_detection: { consecutive_failures: 0 },
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await fake?.close();
  });
  beforeEach(() => fake.reset());

  it('sends the key in api-key (never as a bearer token) on the v1 base path and on deployment paths', async () => {
    for (let i = 0; i < 2; i++) await chat(gw);
    const paths = fake.requests.map((r) => r.path).sort();
    expect(paths).toEqual(['/openai/deployments/nano-prod/chat/completions?api-version=2024-10-21', '/openai/v1/chat/completions']);
    for (const r of fake.requests) {
      expect(r.headers['api-key']).toBe(AZURE_KEY);
      expect(r.headers.authorization).toBeUndefined();
    }
  });
});
