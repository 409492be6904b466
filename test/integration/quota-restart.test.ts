// Spend survives restarts (issue 5, acceptance): a real tollgate process under load is stopped with
// SIGTERM (it drains: every request completes and is settled) and, separately, killed with SIGKILL
// (requests in flight are cut). The spend in Redis then equals the cost of the usage the fake
// upstream reported for the completed requests, plus, after SIGKILL, the reservation of each cut
// request (listed in the output). A new process reads the same figures.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { usageKey } from '../../src/quota/charge.js';
import { windowsAt } from '../../src/quota/windows.js';
import { estimateTokens, promptChars } from '../../src/tokens/estimate.js';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';
import { configDir, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const UPSTREAM_KEY = 'sk-upstream-restart-0123456789abcdef';
const ADMIN_TOKEN = 'tg-admin-restart-0123456789abcdef';
const PREFIX = uniquePrefix('quota-restart');
const MODEL = 'gpt-4.1-nano';
const secret = (id: string) => `tg-restart-${id}-0123456789`;
const CONFIG = `
server:
  shutdown_grace_ms: 20000
limits:
  key_prefix: "${PREFIX}"
  redis_timeout_ms: 5000
keys:
  - { id: drained, key: "${secret('drained')}", tier: tier-5, budget_usd: { total: 100 } }
  - { id: uncapped, key: "${secret('uncapped')}", tier: tier-5 }
  - { id: killed, key: "${secret('killed')}", tier: tier-5, budget_usd: { daily: 100 }, token_quota: { monthly: 100000000 } }
`;

let upstream: FakeUpstream;
let redis: Redis;
let env: Record<string, string>;
const procs: TollgateProcess[] = [];
const configs = configDir();

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  env = {
    TOLLGATE_CONFIG: configs.write('restart.yaml', CONFIG),
    TOLLGATE_UPSTREAM_URL: upstream.url,
    OPENAI_API_KEY: UPSTREAM_KEY,
    REDIS_URL: inject('redisUrl'),
    TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
  };
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await upstream?.close();
  await deleteByPrefix(redis, PREFIX);
  await redis?.quit();
  configs.cleanup();
});

async function start(): Promise<TollgateProcess> {
  const proc = await startTollgate(env);
  procs.push(proc);
  return proc;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

/** nano-dollars at gpt-4.1-nano's published prices: $0.10 input, $0.025 cached input, $0.40 output per 1M. */
function costOf(usage: Usage): number {
  const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
  return (usage.prompt_tokens - cached) * 100 + cached * 25 + usage.completion_tokens * 400;
}

const body = (i: number, stream: boolean) => ({
  model: MODEL,
  messages: [{ role: 'user', content: `request number ${i}` }],
  max_tokens: 200,
  ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
});
/** The most a request may cost, as admission reserves it: input estimate × input price + output cap × output price. */
const reservation = (i: number, stream: boolean) => estimateTokens(promptChars(body(i, stream)), 4) * 100 + 200 * 400;

function post(proc: TollgateProcess, id: string, i: number, stream: boolean, headers: Record<string, string>): Promise<Response> {
  return fetch(`${proc.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret(id)}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body(i, stream)),
  });
}

/** The usage a complete answer reported (JSON body, or the stream's usage chunk). */
async function reportedUsage(res: Response): Promise<Usage> {
  expect(res.status).toBe(200);
  const text = await res.text();
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) return (JSON.parse(text) as { usage: Usage }).usage;
  expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  const events = text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)) as { usage?: Usage | null });
  const usage = events.find((e) => e.usage)?.usage;
  expect(usage).toBeDefined();
  return usage as Usage;
}

async function stored(id: string, window: string): Promise<Record<string, number>> {
  const fields = await redis.hgetall(usageKey(PREFIX, id, window));
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Number(v)]));
}

async function adminUsage(proc: TollgateProcess, id: string): Promise<{ usage: { total: { cost_usd: number; reserved_usd: number; requests: number } } }> {
  const res = await fetch(`${proc.origin}/admin/keys/${id}/usage`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { usage: { total: { cost_usd: number; reserved_usd: number; requests: number } } };
}

const upstreamCalls = (id: string) => upstream.requests.filter((r) => r.path === '/v1/chat/completions' && r.body.toString('utf8').includes(`"content":"${id}`)).length;

describe('spend across restarts', () => {
  it('SIGTERM under load: every request drains and settles; spend = the cost of the reported usage', { timeout: 240_000 }, async () => {
    const proc = await start();
    const quick = Array.from({ length: 10 }, (_, i) => post(proc, 'drained', i, false, { 'x-fake-prompt-tokens': String(300 + i), 'x-fake-cached-tokens': '100' }));
    // A key without budgets: its usage is counted in process and written when the process stops.
    const uncapped = Array.from({ length: 5 }, (_, i) => post(proc, 'uncapped', i, false, { 'x-fake-prompt-tokens': '50', 'x-fake-latency-ms': '300' }));
    // Slow streams, still running when SIGTERM comes.
    const slow = Array.from({ length: 10 }, (_, i) => post(proc, 'drained', 100 + i, true, { 'x-fake-chunks': '20', 'x-fake-chunk-delay-ms': '50' }));
    await vi.waitFor(() => expect(upstream.requests.filter((r) => r.headers.authorization === `Bearer ${UPSTREAM_KEY}` && r.body.toString('utf8').includes('"stream":true')).length).toBeGreaterThanOrEqual(10), { timeout: 10_000 });
    proc.child.kill('SIGTERM');
    const usages = await Promise.all([...quick, ...slow].map(async (p) => reportedUsage(await p)));
    const uncappedCost = (await Promise.all(uncapped.map(async (p) => costOf(await reportedUsage(await p))))).reduce((a, b) => a + b, 0);
    expect(await proc.exited).toBe(0);
    const expected = usages.reduce((sum, u) => sum + costOf(u), 0);
    const total = await stored('drained', 'total');
    expect(total).toMatchObject({ requests: 20, cost_nano: expected, spend_nano: expected });
    expect(await stored('uncapped', 'total')).toMatchObject({ requests: 5, cost_nano: uncappedCost });
    // Another process reads the same spend.
    const next = await start();
    const report = await adminUsage(next, 'drained');
    expect(report.usage.total).toMatchObject({ requests: 20, cost_usd: expected / 1e9, reserved_usd: 0 });
    await next.kill();
  });

  it('SIGKILL under load: completed requests at their reported cost, cut ones at their reservation', { timeout: 240_000 }, async () => {
    upstream.reset();
    const proc = await start();
    // Completed and settled before the kill.
    const done = await Promise.all(Array.from({ length: 5 }, async (_, i) => reportedUsage(await post(proc, 'killed', i, false, { 'x-fake-prompt-tokens': String(1000 + i) }))));
    const completed = done.reduce((sum, u) => sum + costOf(u), 0);
    // The windows as the gateway names them (src/quota/windows.ts), from before the first request
    // to the end: all time for the sums, every month the test touched for the token quota.
    const startedAt = Date.now();
    await vi.waitFor(async () => expect((await stored('killed', 'total')).cost_nano).toBe(completed));
    // Cut by the kill: streams of 10 s, each of which has reached the upstream and sent its first bytes.
    const cut = [100, 101, 102, 103, 104, 105];
    const streams = await Promise.all(cut.map((i) => post(proc, 'killed', i, true, { 'x-fake-chunks': '50', 'x-fake-chunk-delay-ms': '200' })));
    const readers = streams.map((res) => res.body?.getReader());
    await Promise.all(readers.map((r) => r?.read()));
    expect(upstreamCalls('request number 10')).toBe(cut.length);
    await proc.kill();
    for (const reader of readers) await reader?.read().then(() => undefined, () => undefined);

    const reserved = cut.map((i) => reservation(i, true));
    process.stdout.write(`quota-restart: cut by SIGKILL, counted by their reservation: ${cut.map((i, k) => `#${i} (${reserved[k]} nano-USD)`).join(', ')}\n`);
    const total = await stored('killed', 'total');
    expect(total).toMatchObject({
      requests: 5 + cut.length,
      cost_nano: completed,
      spend_nano: completed + reserved.reduce((a, b) => a + b, 0),
    });
    // The token quota holds the cut requests' reserved tokens too.
    const tokens = done.reduce((sum, u) => sum + u.prompt_tokens + u.completion_tokens, 0);
    const reservedTokens = cut.reduce((sum, i) => sum + estimateTokens(promptChars(body(i, true)), 4) + 200, 0);
    const months = [...new Set([windowsAt(startedAt)[1].id, windowsAt(Date.now())[1].id])];
    const quotaTokens = await Promise.all(months.map(async (month) => (await stored('killed', month)).quota_tokens ?? 0));
    expect(quotaTokens.reduce((a, b) => a + b, 0)).toBe(tokens + reservedTokens);
    // A new process reads them and goes on counting.
    const next = await start();
    const report = await adminUsage(next, 'killed');
    expect(report.usage.total.cost_usd).toBe(completed / 1e9);
    expect(report.usage.total.reserved_usd).toBeCloseTo(reserved.reduce((a, b) => a + b, 0) / 1e9, 12);
    await reportedUsage(await post(next, 'killed', 7, false, {}));
    await vi.waitFor(async () => expect((await stored('killed', 'total')).requests).toBe(5 + cut.length + 1));
  });
});
