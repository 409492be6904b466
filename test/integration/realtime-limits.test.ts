import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { openRealtime } from '../helpers/realtime-client.js';

const TPM_KEY = 'tg-realtime-small-tpm-key-000000';
const BUDGET_KEY = 'tg-realtime-small-budget-key-0000';
let fake: FakeUpstream;
let gw: TestGateway;
beforeAll(async () => {
  fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gw = await startGateway({
    upstreamUrl: fake.url,
    config: {
      server: { shutdown_grace_ms: 0 },
      keys: [
        { id: 'test-key', key: CLIENT_KEY, tier: 'tier-1' },
        // One response reserves its input estimate + the 4096-token default cap: a second one at once exceeds 6000.
        { id: 'small-tpm', key: TPM_KEY, tier: 'tier-1', limits: { tpm: 6000 } },
        { id: 'small-budget', key: BUDGET_KEY, tier: 'tier-1', budget_usd: { total: 0.0001 } },
      ],
    },
  });
});
afterAll(async () => {
  await gw.close();
  await fake.close();
});

const open = (key: string) => openRealtime(`${gw.url.replace('http', 'ws')}/realtime?model=gpt-realtime`, undefined, { headers: { authorization: `Bearer ${key}` } });

describe('realtime limits and budgets', () => {
  it('a response.create over the key TPM is refused with rate_limit_exceeded and not forwarded; the session stays open', async () => {
    const rt = await open(TPM_KEY);
    await rt.next('session.created');
    // The second comes while the first still holds its reservation.
    rt.send({ type: 'response.create', event_id: 'evt_1' });
    rt.send({ type: 'response.create', event_id: 'evt_2' });
    const refused = await rt.next('error');
    await rt.next('response.done');
    const mark = rt.events.length;
    expect(refused.error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded', event_id: 'evt_2', message: expect.stringMatching(/on tokens per min \(TPM\): Limit 6000, .* Please try again in \S+\./) });
    const upstream = fake.realtime.sessions.at(-1);
    expect(upstream?.events.filter((e) => e.type === 'response.create')).toHaveLength(1);
    // Still open: the next event goes through.
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'still here' }] } });
    await rt.next('conversation.item.added', mark);
    const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_realtime_refused_total\{reason="tpm"\} 1/);
    rt.ws.close();
  });

  it("a response.create's own input items count in its reservation, beyond the conversation's", async () => {
    const rt = await open(TPM_KEY);
    await rt.next('session.created');
    // A plain one reserves the 4,096-token default cap and fits 6,000; with 8,000 tokens of its own input (4 chars each) it does not.
    rt.send({ type: 'response.create', event_id: 'evt_small', response: { instructions: 'Be brief.' } });
    await rt.next('response.done');
    const mark = rt.events.length;
    rt.send({ type: 'response.create', event_id: 'evt_big', response: { conversation: 'none', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'y'.repeat(32_000) }] }] } });
    const refused = await rt.next('error', mark);
    expect(refused.error).toMatchObject({ code: 'rate_limit_exceeded', event_id: 'evt_big' });
    expect(fake.realtime.sessions.at(-1)?.events.filter((e) => e.type === 'response.create').map((e) => e.event_id)).toEqual(['evt_small']);
    rt.ws.close();
  });

  it('a key past its budget gets insufficient_quota, and nothing reaches the upstream', async () => {
    const rt = await open(BUDGET_KEY);
    await rt.next('session.created');
    rt.send({ type: 'response.create', event_id: 'evt_b' });
    const refused = await rt.next('error');
    expect(refused.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota', event_id: 'evt_b' });
    expect(fake.realtime.sessions.at(-1)?.events.filter((e) => e.type === 'response.create')).toHaveLength(0);
    rt.ws.close();
  });

  it('refuses binary and malformed client frames without forwarding them', async () => {
    const rt = await open(CLIENT_KEY);
    await rt.next('session.created');
    rt.ws.send(Buffer.from('{"type":"response.create"}'), { binary: true });
    expect((await rt.next('error')).error).toMatchObject({ code: 'invalid_event' });
    const mark = rt.events.length;
    rt.ws.send('not json');
    expect((await rt.next('error', mark)).error).toMatchObject({ code: 'invalid_json' });
    expect(fake.realtime.sessions.at(-1)?.events).toHaveLength(0);
    rt.ws.close();
  });
});
