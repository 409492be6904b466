import { Pool, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { parseSamples } from '../helpers/prom-text.js';

// Issue 4, acceptance: 10,000 requests carrying distinct ids in paths and bodies add no new
// series. Labels are bounded by construction (key id, catalogue model or `other`, route
// template); this proves it end to end after one warm-up request of each kind.

const KEY = 'tg-cardinality-key-0123456789abcdef';
const REQUESTS = 10_000;
const CONCURRENCY = 32;
let upstream: FakeUpstream;
let gateway: TestGateway;
let pool: Pool;

beforeAll(async () => {
  upstream = await startFakeUpstream({ record: false });
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    // Models outside the catalogue go upstream (and through limits and usage) under the label `other`.
    config: { models: { unknown: 'pass_through' }, keys: [{ id: 'card', key: KEY, tier: 'tier-5', limits: { rpm: null, tpm: null } }] },
  });
  pool = new Pool(gateway.origin, { connections: CONCURRENCY });
});
afterAll(async () => {
  await pool?.close();
  await gateway?.close();
  await upstream?.close();
});

/** The distinct id of request `i`. */
const idOf = (i: number): string => `Z${i.toString(36)}z${(i * 7919).toString(16)}`;

/** Request kind `kind` carrying the distinct id `id` in its path or body. */
function send(kind: number, id: string): Promise<void> {
  const auth = { authorization: `Bearer ${KEY}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const chat = (model: string) =>
    JSON.stringify({ model, user: `user-${id}`, metadata: { trace: id }, messages: [{ role: 'user', content: `ticket ${id}` }] });
  const post = (path: string, body: string): Dispatcher.RequestOptions => ({ method: 'POST', path, headers: json, body });
  const requests: Dispatcher.RequestOptions[] = [
    { method: 'GET', path: `/v1/files/file-${id}`, headers: auth },
    { method: 'GET', path: `/v1/batches/batch_${id}`, headers: auth },
    { method: 'GET', path: `/v1/responses/resp_${id}?include=${id}`, headers: auth },
    post('/v1/chat/completions', chat('gpt-4.1-nano')),
    post('/v1/chat/completions', chat(`model-${id}`)),
    { method: 'GET', path: `/v1/nope/${id}`, headers: auth },
    { method: 'GET', path: `/v1/models/ft:gpt-4.1-nano:${id}`, headers: auth },
    post('/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: id, user: id })),
  ];
  return pool.request(requests[kind % requests.length] as Dispatcher.RequestOptions).then((res) => res.body.dump());
}
const KINDS = 8;

/** Every series /metrics shows, but prom-client's process defaults (GC kinds and the like come and go). */
async function series(): Promise<{ keys: Set<string>; text: string }> {
  const text = await (await fetch(`${gateway.origin}/metrics`)).text();
  const keys = new Set<string>();
  for (const s of parseSamples(text)) {
    if (s.name.startsWith('tollgate_process_') || s.name.startsWith('tollgate_nodejs_')) continue;
    keys.add(`${s.name}${JSON.stringify(s.labels)}`);
  }
  return { keys, text };
}

const answered = async (): Promise<number> => {
  const text = await (await fetch(`${gateway.origin}/metrics`)).text();
  return parseSamples(text)
    .filter((s) => s.name === 'tollgate_requests_total' && s.labels.endpoint !== '/metrics')
    .reduce((n, s) => n + s.value, 0);
};

describe('label cardinality', () => {
  it(`${REQUESTS.toLocaleString('en-US')} requests with distinct ids in paths and bodies add no series`, { timeout: 120_000 }, async () => {
    for (let kind = 0; kind < KINDS; kind++) await send(kind, `warmup-${kind}`);
    // Polls for the count, with patience for a busy machine (waitFor's default second is not).
    await vi.waitFor(async () => expect(await answered()).toBe(KINDS), { timeout: 30_000 });
    const before = await series();

    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < REQUESTS; i = next++) await send(i, idOf(i));
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await vi.waitFor(async () => expect(await answered()).toBe(KINDS + REQUESTS), { timeout: 30_000 });

    const after = await series();
    expect([...after.keys].filter((k) => !before.keys.has(k))).toEqual([]);
    expect(after.keys.size).toBe(before.keys.size);
    for (const i of [0, 1, 4242, REQUESTS - 1]) expect(after.text).not.toContain(idOf(i));
    for (const part of ['user-Z', 'model-Z', 'ticket', 'file-Z', 'batch_Z', 'resp_Z', 'ft:gpt']) expect(after.text).not.toContain(part);
  });
});
