// Helpers of the response cache and steering tests: raw calls that keep the headers, stream parsing.
import type { FakeUpstream } from './fake-upstream.js';
import type { TestGateway } from './gateway.js';

export interface RawAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** POST a JSON body (path from the origin: `/v1/...`) with a key's secret; the answer read whole. */
export async function post(gw: TestGateway, path: string, secret: string, body: unknown, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const res = await fetch(`${gw.origin}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The `data:` payloads of an SSE text, parsed (`[DONE]` kept as the string). */
export function sseData(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((event) => event.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n'))
    .filter((data) => data.length > 0)
    .map((data) => (data === '[DONE]' ? data : (JSON.parse(data) as unknown)));
}

/** Requests the fake upstream received on one path. */
export function callsTo(upstream: FakeUpstream, path: string): number {
  return upstream.requests.filter((r) => r.path === path).length;
}

/** A system prompt long enough for OpenAI's prompt cache (estimated > 1024 tokens at 4 characters a token). */
export const LONG_SYSTEM_PROMPT = 'You are the support assistant of a large shop. Follow the house rules. '.repeat(80);

/** One series of a Prometheus text exposition, 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
