import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { openRealtime } from '../helpers/realtime-client.js';

let fake: FakeUpstream;
let gw: TestGateway;
beforeAll(async () => {
  fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gw = await startGateway({ upstreamUrl: fake.url, config: { server: { shutdown_grace_ms: 0 }, upstream: { connect_timeout_ms: 300 }, realtime: { max_buffered_bytes: 256 * 1024 } } });
});
afterAll(async () => {
  await gw.close();
  await fake.close();
});

const auth = { headers: { authorization: `Bearer ${CLIENT_KEY}` } };
const url = (): string => `${gw.url.replace('http', 'ws')}/realtime?model=gpt-realtime`;
const responses = (): Record<string, unknown>[] => gw.logs.filter((l) => l.msg === 'realtime response');
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}
async function metric(pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${gw.origin}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

describe('realtime faults', () => {
  it('upstream closes mid-response: the client gets its close code, the response is settled once at the estimate', async () => {
    const before = responses().length;
    const rt = await openRealtime(url(), undefined, auth);
    rt.send({ type: 'response.create', response: { metadata: { fake_deltas: '5', fake_close_after: '2' } } });
    expect(await rt.closed).toEqual({ code: 1011, reason: 'fake upstream failure' });
    await until(() => gw.logs.some((l) => l.msg === 'realtime session' && l.close_by === 'upstream'));
    expect(responses().slice(before)).toEqual([expect.objectContaining({ tokens_source: 'estimated' })]);
  });

  it('upstream never answers the upgrade: 504 after the connect timeout; unreachable: 502', async () => {
    fake.realtime.next = { hang: true };
    await expect(openRealtime(url(), undefined, auth)).rejects.toMatchObject({ status: 504 });
    const dead = await startGateway({ upstreamUrl: 'http://127.0.0.1:1/v1', config: { server: { shutdown_grace_ms: 0 } } });
    await expect(openRealtime(`${dead.url.replace('http', 'ws')}/realtime?model=gpt-realtime`, undefined, auth)).rejects.toMatchObject({ status: 502, body: expect.stringContaining('upstream_unreachable') });
    await dead.close();
  });

  it('a client that vanishes without a close frame mid-response closes the upstream and is settled once', async () => {
    const before = responses().length;
    const rt = await openRealtime(url(), undefined, auth);
    rt.send({ type: 'response.create', response: { metadata: { fake_deltas: '1000', fake_delay_ms: '5' } } });
    await rt.next('response.output_text.delta');
    rt.ws.terminate();
    const upstream = fake.realtime.sessions.at(-1);
    await upstream?.closed;
    expect(upstream?.closeCode).toBe(1001);
    await until(() => responses().length > before);
    expect(responses().slice(before)).toHaveLength(1);
    expect(await metric(/tollgate_realtime_sessions_active (\d+)/)).toBe(0);
  });

  it('a client that stops reading makes the gateway pause the upstream, and after resuming gets every delta in order', async () => {
    const rt = await openRealtime(url(), undefined, auth);
    await rt.next('session.created');
    const total = 300 * 65_536;
    rt.send({ type: 'response.create', response: { output_modalities: ['audio'], metadata: { fake_deltas: '300', fake_delta_bytes: '65536' } } });
    rt.ws.pause();
    const upstream = fake.realtime.sessions.at(-1);
    let paused = 0;
    while (paused === 0) paused = await metric(/tollgate_realtime_backpressure_pauses_total\{direction="upstream_to_client"\} (\d+)/);
    // The fake waits on its own writes (this does not prove the bound by itself: see the note).
    expect(upstream?.sentAudioBytes).toBeLessThan(total);
    rt.ws.resume();
    const done = await rt.next('response.done');
    expect(done).toBeDefined();
    const deltas = rt.events.filter((e) => e.type === 'response.output_audio.delta');
    expect(deltas).toHaveLength(300);
    rt.ws.close();
  });
});
