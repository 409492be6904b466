import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { CLIENT_KEY, UPSTREAM_KEY, startGateway, type TestGateway } from '../helpers/gateway.js';
import { openRealtime } from '../helpers/realtime-client.js';

let fake: FakeUpstream;
let gw: TestGateway;
let port: number;
beforeAll(async () => {
  fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gw = await startGateway({ upstreamUrl: fake.url, config: { server: { shutdown_grace_ms: 0 } } });
  port = Number(new URL(gw.origin).port);
});
afterAll(async () => {
  await gw.close();
  await fake.close();
});

const wsUrl = (query = '?model=gpt-realtime'): string => `ws://127.0.0.1:${port}/v1/realtime${query}`;
const responseLines = (): Record<string, unknown>[] => gw.logs.filter((l) => l.msg === 'realtime response');
const sessionLines = (): Record<string, unknown>[] => gw.logs.filter((l) => l.msg === 'realtime session');

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}

describe('realtime through tollgate', () => {
  it('the official SDK client completes a text turn and an audio turn, priced per modality', async () => {
    // The SDK always dials wss://: its socket is handed a plain TCP connection to the gateway
    // (ws's createConnection), everything else (URL, headers, events) is the SDK's own.
    const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { createConnection: () => connect(port, '127.0.0.1') } }, gw.client());
    const events: { type: string; [k: string]: unknown }[] = [];
    rt.on('event', (e) => events.push(e as never));
    const next = (type: string, from = 0): Promise<Record<string, unknown>> => until(() => events.slice(from).some((e) => e.type === type)).then(() => events.slice(from).find((e) => e.type === type) as Record<string, unknown>);
    await next('session.created');
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'abcdefghijkl' }] } });
    rt.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    const first = await next('response.done');
    const mark = events.length;
    rt.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(4000).toString('base64') });
    rt.send({ type: 'input_audio_buffer.commit' });
    rt.send({ type: 'response.create', response: { output_modalities: ['audio'], metadata: { fake_deltas: '4' } } });
    const second = await next('response.done', mark);
    expect(events.filter((e) => e.type === 'response.output_audio.delta')).toHaveLength(4);
    const limits = await next('rate_limits.updated', mark);
    // The key's own tier-1 figures, not the upstream organisation's.
    expect(limits.rate_limits).toEqual([
      expect.objectContaining({ name: 'requests', limit: 500 }),
      expect.objectContaining({ name: 'tokens', limit: 200_000 }),
    ]);
    rt.close();
    await until(() => sessionLines().length === 1);
    const session = fake.realtime.sessions.at(-1);
    expect(session?.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    // Hand-computed from the fake's usage: turn 1: 3 text in, 3 text out; turn 2: 3+3 text in
    // (the first answer is conversation now, 12 chars → 3 tokens), 5 audio in (4000 B / 800), 4 text + 100 audio out.
    expect((first.response as { usage: unknown }).usage).toMatchObject({ input_tokens: 3, output_tokens: 3 });
    expect((second.response as { usage: unknown }).usage).toMatchObject({ input_token_details: { text_tokens: 6, audio_tokens: 5 }, output_token_details: { text_tokens: 4, audio_tokens: 100 } });
    const turn1 = 3 * 4_000 + 3 * 16_000;
    const turn2 = 6 * 4_000 + 5 * 32_000 + 4 * 16_000 + 100 * 64_000;
    expect(responseLines().map((l) => l.cost_nano)).toEqual([turn1, turn2]);
    expect(sessionLines()[0]).toMatchObject({ key_id: 'test-key', model: 'gpt-realtime', responses: 2, cost_nano: turn1 + turn2 });
    expect(gw.rawLogs()).not.toContain(UPSTREAM_KEY);
    expect(gw.rawLogs()).not.toContain(CLIENT_KEY);
  });

  it('a browser-style client authenticates with the key subprotocol and is answered `realtime`', async () => {
    const rt = await openRealtime(wsUrl(), ['realtime', `openai-insecure-api-key.${CLIENT_KEY}`]);
    expect(rt.ws.protocol).toBe('realtime');
    await rt.next('session.created');
    rt.send({ type: 'response.create' });
    await rt.next('response.done');
    rt.ws.close(4000, 'bye');
    await until(() => fake.realtime.sessions.at(-1)?.closeCode !== undefined);
    expect(fake.realtime.sessions.at(-1)?.closeCode).toBe(4000);
  });

  it('refuses before the upgrade with OpenAI-shaped HTTP errors', async () => {
    await expect(openRealtime(wsUrl(), undefined)).rejects.toMatchObject({ status: 401 });
    await expect(openRealtime(wsUrl(), undefined, { headers: { authorization: 'Bearer tg-wrong-key-000000000000' } })).rejects.toMatchObject({ status: 401, body: expect.stringContaining('invalid_api_key') });
    await expect(openRealtime(wsUrl('?model=nope'), undefined, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })).rejects.toMatchObject({ status: 404, body: expect.stringContaining('model_not_found') });
    await expect(openRealtime(wsUrl(''), undefined, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })).rejects.toMatchObject({ status: 400 });
    fake.realtime.next = { status: 503, body: { error: { message: 'overloaded', type: 'server_error', param: null, code: null } } };
    await expect(openRealtime(wsUrl(), undefined, { headers: { authorization: `Bearer ${CLIENT_KEY}` } })).rejects.toMatchObject({ status: 503, body: expect.stringContaining('overloaded') });
  });
});
