import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { openRealtime } from '../helpers/realtime-client.js';

const HIGH_WATER = 256 * 1024;
let fake: FakeUpstream;
let gw: TestGateway;
beforeAll(async () => {
  fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gw = await startGateway({ upstreamUrl: fake.url, config: { server: { shutdown_grace_ms: 0 }, upstream: { connect_timeout_ms: 300 }, realtime: { max_buffered_bytes: HIGH_WATER } } });
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

  it('a client that stops reading while the upstream floods audio: the gateway holds the upstream, its buffered bytes stay bounded, and after resuming every delta arrives in order', async () => {
    const rt = await openRealtime(url(), undefined, auth);
    await rt.next('session.created');
    const deltas = 800;
    const deltaBytes = 65_536;
    const total = deltas * deltaBytes;
    rt.ws.pause();
    rt.send({ type: 'response.create', response: { output_modalities: ['audio'], metadata: { fake_deltas: String(deltas), fake_delta_bytes: String(deltaBytes) } } });
    const upstream = fake.realtime.sessions.at(-1);
    if (!upstream) throw new Error('no upstream session');
    // The gateway may hold max_buffered_bytes per side, plus what one socket read had already
    // parsed when it paused (a few frames). Without the pause it would hold tens of MiB (the
    // ~70 MiB the fake sends, less what the kernel's socket buffers take).
    const frameBytes = Math.ceil(deltaBytes / 3) * 4 + 512;
    const bound = HIGH_WATER + 4 * frameBytes;
    let peak = 0;
    let last = -1;
    let unchanged = 0;
    // Sample until the fake is held (no progress over 20 samples) or has sent everything, or the bound is passed.
    while (unchanged < 20 && upstream.sentAudioBytes < total && peak <= bound) {
      peak = Math.max(peak, await metric(/tollgate_realtime_buffered_bytes (\d+)/));
      unchanged = upstream.sentAudioBytes === last ? unchanged + 1 : 0;
      last = upstream.sentAudioBytes;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(peak).toBeLessThanOrEqual(bound);
    expect(await metric(/tollgate_realtime_backpressure_pauses_total\{direction="upstream_to_client"\} (\d+)/)).toBeGreaterThan(0);
    rt.ws.resume();
    await rt.next('response.done');
    const received = rt.events.filter((e) => e.type === 'response.output_audio.delta');
    expect(received).toHaveLength(deltas);
    // In order: the fake fills delta i with the byte i % 251.
    expect(received.every((e, i) => Buffer.from(String(e.delta), 'base64')[0] === i % 251)).toBe(true);
    rt.ws.close();
  }, 120_000);

  it('an upstream that stops reading while the client floods audio appends: the gateway stops reading the client, its buffered bytes stay bounded, and every append arrives once the upstream reads again', async () => {
    const rt = await openRealtime(url(), undefined, auth);
    await rt.next('session.created');
    const upstream = fake.realtime.sessions.at(-1);
    if (!upstream) throw new Error('no upstream session');
    upstream.socket.pause();
    const appends = 600;
    const frame = JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(98_304, 7).toString('base64') });
    for (let i = 0; i < appends; i++) rt.ws.send(frame);
    const bound = HIGH_WATER + 4 * (frame.length + 512);
    let peak = 0;
    let last = -1;
    let unchanged = 0;
    const relayed = (): Promise<number> => metric(/tollgate_realtime_frames_total\{direction="client_to_upstream"\} (\d+)/);
    // Sample until the gateway is held (no progress over 20 samples) or has relayed everything, or the bound is passed.
    for (let n = await relayed(); unchanged < 20 && n < appends && peak <= bound; n = await relayed()) {
      peak = Math.max(peak, await metric(/tollgate_realtime_buffered_bytes (\d+)/));
      unchanged = n === last ? unchanged + 1 : 0;
      last = n;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(peak).toBeLessThanOrEqual(bound);
    expect(await metric(/tollgate_realtime_backpressure_pauses_total\{direction="client_to_upstream"\} (\d+)/)).toBeGreaterThan(0);
    upstream.socket.resume();
    await until(() => upstream.frames >= appends);
    expect(upstream.frames).toBe(appends);
    rt.ws.close();
  }, 120_000);
});
