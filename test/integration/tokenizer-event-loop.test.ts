// Issue 14 item 8: the exact tokenizer blocked the event loop. Near the context window the
// gateway counts a prompt's tokens exactly; a 31 MB prompt held the process for ~5 s, every other
// request and /healthz with it, and a client could repeat it. Counting now runs in a worker thread.
// Acceptance (the issue asks for a latency figure here): with 4 clients sending 31 MB prompts in a
// loop, /healthz stays fast and a normal key's requests are served. The gateway runs as its own
// process so that the clients' work does not share its event loop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { UPSTREAM_KEY } from '../helpers/gateway.js';
import { configDir, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const HEAVY = 'tg-heavy-client-0123456789abcdef';
const NORMAL = 'tg-normal-client-0123456789abcdef';
const MODEL = 'gpt-4.1-nano';
const PROMPT_BYTES = 31_000_000;

const configs = configDir();
let upstream: FakeUpstream;
let gateway: TollgateProcess;
beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY, record: false });
  const config = [
    'server:',
    `  body_limit_bytes: ${40 * 1024 * 1024}`,
    'keys:',
    '  - id: heavy',
    `    key: ${HEAVY}`,
    '    tier: tier-5',
    '  - id: normal',
    `    key: ${NORMAL}`,
    '    tier: tier-5',
  ].join('\n');
  gateway = await startTollgate({
    TOLLGATE_CONFIG: configs.write('tokenizer.yaml', config),
    TOLLGATE_UPSTREAM_URL: upstream.url,
    OPENAI_API_KEY: UPSTREAM_KEY,
    LOG_LEVEL: 'warn',
  });
}, 60_000);
afterAll(async () => {
  await gateway?.kill();
  await upstream?.close();
  configs.cleanup();
});

/** A 31 MB prompt of ordinary words: ~7M tokens, far over gpt-4.1-nano's 1,047,576. */
function hugeBody(): Buffer {
  const words = 'lorem ipsum dolor sit amet, consectetur adipiscing elit; sed do eiusmod tempor. ';
  const content = words.repeat(Math.ceil(PROMPT_BYTES / words.length)).slice(0, PROMPT_BYTES);
  return Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }] }));
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

describe('the exact tokenizer does not block the event loop', () => {
  it('4 clients sending 31 MB prompts in a loop: /healthz p99 stays low, a normal key is served', { timeout: 240_000 }, async () => {
    const body = hugeBody();
    const dispatcher = new Agent({ connections: 64 });
    const post = async (secret: string, payload: Buffer | string) => {
      const res = await request(`${gateway.origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: payload,
        dispatcher,
      });
      return { status: res.statusCode, json: (await res.body.json()) as { error?: { code?: string } } };
    };

    let stop = false;
    const heavyAnswers: number[] = [0, 0, 0, 0];
    const heavyCodes = new Set<string>();
    const heavy = heavyAnswers.map(async (_, client) => {
      while (!stop) {
        const answer = await post(HEAVY, body);
        heavyCodes.add(`${answer.status} ${answer.json.error?.code}`);
        heavyAnswers[client]! += 1;
      }
    });

    // Open-loop sampling: a /healthz request every 10 ms whatever the previous ones do, so that a
    // stall delays every sample it covers (a closed loop would see one slow sample per stall).
    // Sampled until every heavy client has had an answer: the samples span a full round.
    const healthz: Promise<number>[] = [];
    const normal: Promise<number>[] = [];
    for (let tick = 0; heavyAnswers.some((n) => n < 1); tick++) {
      const started = performance.now();
      healthz.push(
        request(`${gateway.origin}/healthz`, { dispatcher }).then(async (res) => {
          await res.body.text();
          expect(res.statusCode).toBe(200);
          return performance.now() - started;
        }),
      );
      if (tick % 20 === 0) normal.push(post(NORMAL, JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })).then((a) => a.status));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    stop = true;
    await Promise.all(heavy);
    await dispatcher.close();

    // Every 31 MB prompt was counted and refused: it is over the window.
    expect([...heavyCodes]).toEqual(['400 context_length_exceeded']);
    const normalStatuses = await Promise.all(normal);
    expect(normalStatuses.filter((status) => status !== 200)).toEqual([]);
    const latencies = await Promise.all(healthz);
    // Today's stalls were 1.3 s (8 MB) to 5 s (31 MB) of CPU per prompt, back to back with 4
    // clients: the loop was held nearly all the time and the median sample waited seconds. What is
    // left on the loop is reading and parsing each 31 MB body (~0.1 s of CPU), which a machine
    // whose 2 cores are shared with other runs stretches without bound: the tail is reported, not
    // bounded; the median is what tells a free loop (tens to hundreds of ms) from a held one (seconds).
    const p99 = percentile(latencies, 99);
    const p50 = percentile(latencies, 50);
    const figures = `healthz over ${latencies.length} samples: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`;
    // On this 2-core host a free loop's median runs 50–150 ms alone and reached 395 ms once in the
    // full suite (two files at a time); a held loop's is seconds. The bound sits between the two.
    expect(p50, figures).toBeLessThan(1000);
  });
});
