import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { openRealtime } from '../helpers/realtime-client.js';

const KEY = 'sk-fake-realtime-key-0123456789';
let fake: FakeUpstream;
beforeAll(async () => {
  fake = await startFakeUpstream({ apiKey: KEY });
});
afterAll(() => fake.close());

const wsUrl = (): string => `ws://127.0.0.1:${fake.port}/v1/realtime?model=gpt-realtime`;

describe('fake upstream: realtime over WebSocket', () => {
  it('opens with session.created, streams a text response and reports usage by modality', async () => {
    const rt = await openRealtime(wsUrl(), undefined, { headers: { authorization: `Bearer ${KEY}` } });
    await rt.next('session.created');
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'abcdefgh' }] } });
    await rt.next('conversation.item.added');
    rt.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    const done = await rt.next('response.done');
    expect(rt.events.filter((e) => e.type === 'response.output_text.delta')).toHaveLength(3);
    expect((done.response as { usage: unknown }).usage).toMatchObject({
      input_tokens: 2,
      output_tokens: 3,
      input_token_details: { text_tokens: 2, audio_tokens: 0 },
      output_token_details: { text_tokens: 3, audio_tokens: 0 },
    });
    await rt.next('rate_limits.updated');
    rt.ws.close();
  });

  it('streams audio, counts committed audio, and answers errors as events', async () => {
    const rt = await openRealtime(wsUrl(), undefined, { headers: { authorization: `Bearer ${KEY}` } });
    rt.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(1600).toString('base64') });
    rt.send({ type: 'input_audio_buffer.commit' });
    rt.send({ type: 'response.create', response: { output_modalities: ['audio'], metadata: { fake_deltas: '2' } } });
    const done = await rt.next('response.done');
    expect((done.response as { usage: unknown }).usage).toMatchObject({ input_token_details: { audio_tokens: 2 }, output_token_details: { audio_tokens: 50, text_tokens: 2 } });
    expect(rt.events.filter((e) => e.type === 'response.output_audio.delta')).toHaveLength(2);
    rt.send({ type: 'bogus' });
    expect(await rt.next('error')).toMatchObject({ error: { code: 'invalid_value' } });
    rt.ws.close();
  });

  it('refuses a wrong key with an HTTP 401 and follows its upgrade script', async () => {
    await expect(openRealtime(wsUrl(), undefined, { headers: { authorization: 'Bearer nope' } })).rejects.toMatchObject({ status: 401 });
    fake.realtime.next = { status: 503, body: { error: { message: 'down', type: 'server_error', param: null, code: null } } };
    await expect(openRealtime(wsUrl(), undefined, { headers: { authorization: `Bearer ${KEY}` } })).rejects.toMatchObject({ status: 503 });
  });
});
