import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { openRealtime } from '../helpers/realtime-client.js';
import { createEphemeralSecrets } from '../../src/realtime/secrets.js';

let fake: FakeUpstream;
let gw: TestGateway;
beforeAll(async () => {
  fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gw = await startGateway({ upstreamUrl: fake.url, config: { server: { shutdown_grace_ms: 0 } } });
});
afterAll(async () => {
  await gw.close();
  await fake.close();
});

async function mint(body: unknown): Promise<Response> {
  return fetch(`${gw.url}/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('ephemeral secrets minted by tollgate', () => {
  it('mints an ek_ secret in OpenAI\'s shape, usable once on /v1/realtime with its session settings applied', async () => {
    const answer = await mint({ expires_after: { anchor: 'created_at', seconds: 60 }, session: { type: 'realtime', model: 'gpt-realtime', instructions: 'Be brief.' } });
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { value: string; expires_at: number; session: Record<string, unknown> };
    expect(body.value).toMatch(/^ek_/);
    expect(body.session).toMatchObject({ type: 'realtime', model: 'gpt-realtime', instructions: 'Be brief.' });
    expect(fake.requests.filter((r) => r.path.includes('client_secrets'))).toHaveLength(0);
    const url = `${gw.url.replace('http', 'ws')}/realtime?model=gpt-realtime`;
    const rt = await openRealtime(url, ['realtime', `openai-insecure-api-key.${body.value}`]);
    await rt.next('session.updated');
    rt.send({ type: 'response.create' });
    await rt.next('response.done');
    expect(fake.realtime.sessions.at(-1)?.events[0]).toMatchObject({ type: 'session.update', session: { instructions: 'Be brief.' } });
    rt.ws.close();
    // Used once: refused after that.
    await expect(openRealtime(url, ['realtime', `openai-insecure-api-key.${body.value}`])).rejects.toMatchObject({ status: 401, body: expect.stringContaining('invalid_api_key') });
    expect(gw.rawLogs()).not.toContain(body.value);
  });

  it('refuses a mint without a tollgate key, and a TTL out of range', async () => {
    const anonymous = await fetch(`${gw.url}/realtime/client_secrets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(anonymous.status).toBe(401);
    expect((await mint({ expires_after: { anchor: 'created_at', seconds: 99999 } })).status).toBe(400);
  });

  it('an expired secret is refused (the store, with its clock injected)', async () => {
    let now = 1_000_000;
    const secrets = createEphemeralSecrets(undefined, 't:', () => now);
    const value = await secrets.mint({ keyId: 'k', model: 'gpt-realtime', session: {}, expiresAtMs: now + 10_000 });
    now += 10_000;
    expect(await secrets.take(value)).toBeUndefined();
    const fresh = await secrets.mint({ keyId: 'k', model: 'gpt-realtime', session: {}, expiresAtMs: now + 10_000 });
    expect(await secrets.take(fresh)).toMatchObject({ keyId: 'k' });
    expect(await secrets.take(fresh)).toBeUndefined();
    secrets.close();
  });
});
