import { describe, expect, it } from 'vitest';
import { UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';

const fx = useGateway({ resetEachTest: false });

describe('smoke', () => {
  it('forwards a chat completion with the upstream key', async () => {
    const completion = await fx.gateway.client().chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.object).toBe('chat.completion');
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });
  it('streams', async () => {
    const stream = await fx.gateway.client().chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text.length).toBeGreaterThan(0);
  });
});
