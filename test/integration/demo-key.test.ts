// Safe by default (issue 14, item 17): the demo key's secret is published (config/tollgate.yaml,
// README), so tollgate accepts it only from its own machine: a client on loopback gets answers
// (the quickstart), a request relayed by a proxy gets 401 and nothing reaches the upstream (other
// addresses: test/unit/public-secrets.test.ts, as tests reach the gateway on 127.0.0.1 only). The
// start warns loudly. A key with a secret of its own is not affected.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { expectEnvelope } from '../helpers/openai-errors.js';
import { pollGet, spawnTollgate } from '../helpers/tollgate-process.js';

const DEMO = 'tg-demo-key-change-me';
const OWN = 'tg-own-secret-for-demo-test-0123456789';
const REMOTE = '203.0.113.7';
const CHAT = { model: 'gpt-4.1-nano', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 5 };

let upstream: FakeUpstream;
let gateway: TestGateway;
let hashed: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  const keys = [
    { id: 'demo', key: DEMO, tier: 'tier-1' as const },
    { id: 'own', key: OWN, tier: 'tier-1' as const },
  ];
  gateway = await startGateway({ upstreamUrl: upstream.url, config: { keys } });
  const digest = createHash('sha256').update(DEMO).digest('hex');
  hashed = await startGateway({ upstreamUrl: upstream.url, config: { keys: [{ id: 'demo-hashed', key_sha256: digest, tier: 'tier-1' }] } });
});
afterAll(async () => {
  await gateway?.close();
  await hashed?.close();
  await upstream?.close();
});

function expectRefused(answer: { status: number; body: unknown }): void {
  expect(answer.status).toBe(401);
  const error = expectEnvelope(answer.body);
  expect(error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
  expect(error.message).toContain('accepted only from the gateway');
  expect(error.message).not.toContain(DEMO);
}

describe('the published demo secret', () => {
  it('works from the gateway’s own machine (the quickstart), with the openai SDK', async () => {
    const completion = await gateway.client({ apiKey: DEMO }).chat.completions.create(CHAT);
    expect(completion.object).toBe('chat.completion');
  });

  it('is refused when a proxy relayed the request (forwarding headers), and nothing reaches the upstream; a key of its own works', async () => {
    upstream.reset();
    const relayed = (secret: string, header: string) =>
      fetch(`${gateway.url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', [header]: header === 'forwarded' ? `for=${REMOTE}` : REMOTE },
        body: JSON.stringify(CHAT),
      });
    for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip']) {
      const res = await relayed(DEMO, header);
      expectRefused({ status: res.status, body: await res.json() });
    }
    expect(upstream.requests).toHaveLength(0);
    expect((await relayed(OWN, 'x-forwarded-for')).status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
  });

  it('is named in a warning at start; other keys are not', () => {
    const warnings = gateway.logs.filter((line) => line.level === 40 && String(line.msg).includes('PUBLISHED DEMO SECRET'));
    expect(warnings.map((line) => line.key_id)).toEqual(['demo']);
    expect(gateway.rawLogs()).not.toContain(DEMO);
    expect(hashed.logs.some((line) => line.key_id === 'demo-hashed' && line.level === 40)).toBe(true);
  });
});

describe('the quickstart: the process entry with the shipped config/tollgate.yaml', () => {
  // The process compiles TypeScript at start: on a loaded machine that takes a while, so the test
  // polls /healthz for longer than the suite's default allows.
  it('answers the demo key from this machine and warns about it at start', { timeout: 120_000 }, async () => {
    // No TOLLGATE_CONFIG, no TOLLGATE_DEMO_KEY: what `npm start` does on a fresh checkout.
    const gateway = await spawnTollgate({ TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY });
    try {
      await pollGet(`${gateway.origin}/healthz`, (r) => r.status === 200, 100_000);
      const res = await fetch(`${gateway.origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEMO}`, 'content-type': 'application/json' },
        body: JSON.stringify(CHAT),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { object: string }).object).toBe('chat.completion');
      const relayed = await fetch(`${gateway.origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEMO}`, 'content-type': 'application/json', 'x-forwarded-for': REMOTE },
        body: JSON.stringify(CHAT),
      });
      expect(relayed.status).toBe(401);
      await gateway.waitForOutput('PUBLISHED DEMO SECRET');
      expect(gateway.stdout()).not.toContain(DEMO);
    } finally {
      await gateway.kill();
    }
  });
});
