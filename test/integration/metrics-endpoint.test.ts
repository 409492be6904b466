import { describe, expect, it, vi } from 'vitest';
import { CLIENT_KEY, UPSTREAM_KEY, useGateway } from '../helpers/gateway.js';

// /metrics, /healthz and /readyz are open (no client key); metric labels never carry a secret.

const WRONG_KEY = 'tg-metrics-wrong-key-0123456789abcdef';

const fx = useGateway({ resetEachTest: false });

async function scrape(): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${fx.gateway.origin}/metrics`);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** The value of one sample whose labels include all of `labels`; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('/metrics', () => {
  it('answers Prometheus text without a client key', async () => {
    const { status, type, text } = await scrape();
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    expect(text).toContain('# TYPE tollgate_requests_total counter');
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      expect(line, 'every sample is tollgate_-prefixed').toMatch(/^tollgate_/);
    }
  });

  it('counts requests by key id, never the secret', async () => {
    const chat = () =>
      fx.gateway.client().chat.completions.create({ model: 'gpt-4.1-nano-2025-04-14', messages: [{ role: 'user', content: 'count me' }] });
    await chat();
    await chat();
    const wrong = await fetch(`${fx.gateway.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${WRONG_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [] }),
    });
    expect(wrong.status).toBe(401);
    await wrong.text();

    // requests are counted when their response closes: poll
    let text = '';
    await vi.waitFor(async () => {
      text = (await scrape()).text;
      const ok = { key: 'test-key', endpoint: '/v1/chat/completions', status_class: '2xx' };
      expect(sample(text, 'tollgate_requests_total', ok)).toBe(2);
      expect(sample(text, 'tollgate_requests_total', { endpoint: '/v1/chat/completions', status_class: '4xx' })).toBe(1);
    });
    // the alias is counted under the catalogue name
    expect(sample(text, 'tollgate_requests_total', { key: 'test-key', model: 'gpt-4.1-nano', status_class: '2xx' })).toBe(2);
    expect(text).not.toContain('gpt-4.1-nano-2025-04-14');
    expect(text).not.toContain(CLIENT_KEY);
    expect(text).not.toContain(WRONG_KEY);
    expect(text).not.toContain(UPSTREAM_KEY);
    expect(text).not.toContain(CLIENT_KEY.slice(3, 20));
    expect(text).not.toContain(WRONG_KEY.slice(3, 20));
    const wrongLine = text.split('\n').find((l) => l.startsWith('tollgate_requests_total{') && l.includes('status_class="4xx"'));
    expect(wrongLine).not.toContain('key="test-key"');
  });

  it('labels endpoints by route template, never by raw id paths', async () => {
    const res = await fetch(`${fx.gateway.origin}/v1/files/file-abc123`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    await res.text();
    const res404 = await fetch(`${fx.gateway.origin}/v1/nope/file-xyz789`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    expect(res404.status).toBe(404);
    await res404.text();
    let text = '';
    await vi.waitFor(async () => {
      text = (await scrape()).text;
      expect(sample(text, 'tollgate_requests_total', { endpoint: '/v1/files/:file_id' })).toBe(1);
      expect(sample(text, 'tollgate_requests_total', { status_class: '4xx', model: 'none', endpoint: 'unmatched' })).toBe(1);
    });
    expect(text).not.toContain('file-abc123');
    expect(text).not.toContain('file-xyz789');
  });

  it('labels a model outside the catalogue with a bounded value, not the raw name', async () => {
    const res = await fetch(`${fx.gateway.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'made-up-model-31337', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(404);
    await res.text();
    await vi.waitFor(async () => {
      const { text } = await scrape();
      expect(sample(text, 'tollgate_requests_total', { key: 'test-key', status_class: '4xx', endpoint: '/v1/chat/completions' })).toBe(1);
      expect(text).not.toContain('made-up-model-31337');
    });
  });
});

describe('health endpoints need no key', () => {
  it('/healthz is 200 without Authorization', async () => {
    const res = await fetch(`${fx.gateway.origin}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz is 200 without Authorization (no REDIS_URL)', async () => {
    const res = await fetch(`${fx.gateway.origin}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready' });
  });

  it('a wrong key on the open endpoints is ignored, not rejected', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(`${fx.gateway.origin}${path}`, { headers: { authorization: `Bearer ${WRONG_KEY}` } });
      expect(res.status, path).toBe(200);
      await res.text();
    }
  });
});
