import { request as httpRequest, Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDPOINTS, type Endpoint } from '../../src/proxy/endpoints.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';

/**
 * The bypass matrix: every metered endpoint of the table (so a new one joins by itself) × content
 * types × path forms × model shapes, sent raw over HTTP.
 * - A key with `rpm: 1`, an allow-list of gpt-4.1-nano and an exhausted budget: the upstream
 *   receives nothing, and every refusal is in OpenAI's envelope.
 * - A key without limits: only a canonical path with a content type the endpoint takes and a
 *   model that is a string (or absent where the endpoint allows it) ever reaches the upstream,
 *   and the plain well-formed request does (the test can fail both ways).
 * - Every served POST without a price (uploads, cancels, realtime call control, …) × content
 *   types × path forms, the same two ways: a key past its RPD reaches nothing; without limits only
 *   canonical paths with accepted content types do.
 */

const RESTRICTED = 'tg-matrix-restricted-0123456789';
const BUDGET_ONLY = 'tg-matrix-budget-only-0123456789';
const OPEN = 'tg-matrix-open-0123456789abcdef';
/** `rpd: 1` (per bucket), spent before the unmetered run: a window no run outlasts. */
const SPENT = 'tg-matrix-spent-0123456789abcdef';
const BOUNDARY = 'tollgatematrixboundary';

type Shape = 'allowed' | 'disallowed' | 'missing' | 'number' | 'object' | 'array';
const SHAPES: readonly Shape[] = ['allowed', 'disallowed', 'missing', 'number', 'object', 'array'];
const MODEL_VALUES: Record<Shape, unknown> = {
  allowed: 'gpt-4.1-nano',
  disallowed: 'gpt-4o',
  missing: undefined,
  number: 123,
  object: { a: 1 },
  array: ['gpt-4.1-nano'],
};

type ContentType = 'json' | 'json-charset' | 'none' | 'text-plain' | 'form-urlencoded' | 'text-json' | 'vnd-json' | 'multipart';
const CONTENT_TYPES: Record<ContentType, string | undefined> = {
  json: 'application/json',
  'json-charset': 'application/json; charset=utf-8',
  none: undefined,
  'text-plain': 'text/plain',
  'form-urlencoded': 'application/x-www-form-urlencoded',
  'text-json': 'text/json',
  'vnd-json': 'application/vnd.api+json',
  multipart: `multipart/form-data; boundary=${BOUNDARY}`,
};

type PathForm = 'canonical' | 'trailing-slash' | 'dot-segment' | 'encoded-slash' | 'encoded-char' | 'double-slash' | 'absolute-form';
const PATH_FORMS: Record<PathForm, (path: string) => string> = {
  canonical: (p) => p,
  'trailing-slash': (p) => `${p}/`,
  'dot-segment': (p) => p.replace('/v1/', '/v1/files/../'),
  'encoded-slash': (p) => p.replace(/\/([^/]+)$/, '%2F$1'),
  'encoded-char': (p) => `${p.slice(0, -1)}%${p.charCodeAt(p.length - 1).toString(16)}`,
  'double-slash': (p) => p.replace('/v1/', '/v1//'),
  'absolute-form': (p) => `http://evil.example${p}`,
};

const METERED = ENDPOINTS.filter((endpoint) => endpoint.metered && endpoint.access === 'served');
/** Served POSTs without a price (uploads, cancels, call control, …): content types × path forms. */
const UNMETERED_POSTS = ENDPOINTS.filter((endpoint) => !endpoint.metered && endpoint.access === 'served' && endpoint.method === 'POST');

/** The route template with its parameters filled in. */
const concretePath = (endpoint: Endpoint): string => endpoint.url.replace(/:([a-z_]+)/g, 'x1');

/** A body that names the model in the shape asked for, as JSON or as a multipart form. */
function body(shape: Shape, multipart: boolean): Buffer {
  const value = MODEL_VALUES[shape];
  if (!multipart) {
    const json: Record<string, unknown> = { messages: [{ role: 'user', content: 'hi' }], input: 'hi', prompt: 'hi', voice: 'alloy' };
    if (value !== undefined) json.model = value;
    // Nested model fields (evals runs, graders, realtime secrets) in the same shape.
    json.data_source = value === undefined ? { type: 'completions' } : { type: 'completions', model: value };
    json.grader = value === undefined ? { type: 'score_model' } : { type: 'score_model', model: value };
    json.session = value === undefined ? { type: 'realtime' } : { type: 'realtime', model: value };
    return Buffer.from(JSON.stringify(json));
  }
  const parts: string[] = [];
  if (value !== undefined) parts.push(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${typeof value === 'string' ? value : JSON.stringify(value)}\r\n`);
  parts.push(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n`);
  parts.push(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF0000WAVE\r\n`);
  parts.push(`--${BOUNDARY}--\r\n`);
  return Buffer.from(parts.join(''));
}

const agent = new Agent({ keepAlive: true, maxSockets: 16 });
let origin: { host: string; port: number };

function send(path: string, contentType: string | undefined, payload: Buffer, secret: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${secret}`, 'content-length': String(payload.length) };
    if (contentType !== undefined) headers['content-type'] = contentType;
    const req = httpRequest({ ...origin, agent, method: 'POST', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

interface Case {
  readonly endpoint: Endpoint;
  readonly contentType: ContentType;
  readonly pathForm: PathForm;
  readonly shape: Shape;
}

function* cases(unmetered = false): Generator<Case> {
  for (const endpoint of unmetered ? UNMETERED_POSTS : METERED) {
    for (const contentType of Object.keys(CONTENT_TYPES) as ContentType[]) {
      for (const pathForm of Object.keys(PATH_FORMS) as PathForm[]) {
        // Without a price the model's shape changes nothing but the endpoints that name one.
        for (const shape of unmetered ? (['allowed'] as const) : SHAPES) yield { endpoint, contentType, pathForm, shape };
      }
    }
  }
}

const label = (c: Case): string => `${c.endpoint.url} ${c.contentType} ${c.pathForm} ${c.shape}`;

/** Send every case (16 at a time); return what each got. */
async function run(secret: string, unmetered = false): Promise<{ c: Case; status: number; text: string; tag: string }[]> {
  const all = [...cases(unmetered)];
  const out: { c: Case; status: number; text: string; tag: string }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < all.length) {
      const c = all[next++] as Case;
      const tag = `m${next}`;
      const path = `${PATH_FORMS[c.pathForm](concretePath(c.endpoint))}?case=${tag}`;
      const answer = await send(path, CONTENT_TYPES[c.contentType], body(c.shape, c.contentType === 'multipart'), secret);
      out.push({ c, ...answer, tag });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return out;
}

function isOpenAIError(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown; type?: unknown; param?: unknown; code?: unknown } };
    const error = parsed.error;
    return typeof error?.message === 'string' && typeof error.type === 'string' && 'param' in error && 'code' in error;
  } catch {
    return false;
  }
}

let upstream: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    config: {
      server: { unauthenticated_rpm: 0 },
      keys: [
        { id: 'restricted', key: RESTRICTED, tier: 'tier-5', limits: { rpm: 1 }, models: ['gpt-4.1-nano'], budget_usd: { daily: 0 } },
        { id: 'open', key: OPEN, tier: 'tier-5' },
        { id: 'spent', key: SPENT, tier: 'tier-5', limits: { rpd: 1 } },
        { id: 'budget-only', key: BUDGET_ONLY, tier: 'tier-5', budget_usd: { daily: 0 } },
      ],
    },
  });
  const url = new URL(gateway.origin);
  origin = { host: url.hostname, port: Number(url.port) };
});
afterAll(async () => {
  agent.destroy();
  await gateway?.close();
  await upstream?.close();
});

/** The content type is one the endpoint takes (a `none` POST takes the `{}` some clients send). */
const accepts = (c: Case): boolean =>
  c.endpoint.body === 'multipart' ? c.contentType === 'multipart' : c.endpoint.body === 'json_or_multipart' ? ['json', 'json-charset', 'multipart'].includes(c.contentType) : ['json', 'json-charset'].includes(c.contentType);

const reached = (tag: string): boolean => upstream.requests.some((r) => r.path.endsWith(`?case=${tag}`));

describe('bypass matrix', () => {
  it(`covers every metered endpoint (${METERED.length}) of the table`, () => {
    expect(METERED.map((e) => e.url)).toEqual(expect.arrayContaining(['/v1/chat/completions', '/v1/responses', '/v1/audio/transcriptions', '/v1/images/edits', '/v1/embeddings']));
  });

  it('a key with rpm 1, an allow-list and an exhausted budget: nothing reaches the upstream, every refusal is OpenAI-shaped', async () => {
    upstream.reset();
    const answers = await run(RESTRICTED);
    const passed = answers.filter((a) => a.status < 400).map((a) => `${label(a.c)} → ${a.status}`);
    expect(passed).toEqual([]);
    const unshaped = answers.filter((a) => !isOpenAIError(a.text)).map((a) => `${label(a.c)} → ${a.status} ${a.text.slice(0, 80)}`);
    expect(unshaped).toEqual([]);
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual([]);
  }, 120_000);

  // Unit-priced endpoints (images, speech, transcription, video) with a model priced in their unit:
  // a key whose only limit is a used-up budget is refused by its budget, named model or not.
  it('a key with only an exhausted budget: no unit-priced request reaches the upstream, named, defaulted or implied model', async () => {
    upstream.reset();
    const PRICED: Record<NonNullable<Endpoint['units']>, string | undefined> = { images: 'dall-e-3', speech: 'tts-1', transcription: 'whisper-1', video: 'sora-2', containers: undefined };
    const units = METERED.filter((e) => e.units !== undefined);
    expect(units.map((e) => e.url)).toEqual(expect.arrayContaining(['/v1/images/generations', '/v1/audio/speech', '/v1/audio/transcriptions', '/v1/videos', '/v1/containers']));
    const answers: string[] = [];
    for (const endpoint of units) {
      const multipart = endpoint.body !== 'json';
      // Containers name no model: priced by their memory limit.
      for (const model of endpoint.model ? [PRICED[endpoint.units as keyof typeof PRICED], undefined] : [undefined]) {
        const payload = multipart
          ? body('missing', true).toString('latin1').replace(`--${BOUNDARY}\r\n`, model === undefined ? `--${BOUNDARY}\r\n` : `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n--${BOUNDARY}\r\n`)
          : Buffer.from(JSON.stringify({ input: 'hi', prompt: 'hi', voice: 'alloy', ...(model === undefined ? {} : { model }) })).toString('latin1');
        const answer = await send(concretePath(endpoint), CONTENT_TYPES[multipart ? 'multipart' : 'json'], Buffer.from(payload, 'latin1'), BUDGET_ONLY);
        const code = (JSON.parse(answer.text) as { error?: { code?: string } }).error?.code;
        answers.push(`${endpoint.url} ${model ?? '(none)'} → ${answer.status} ${code}`);
        expect(isOpenAIError(answer.text), answer.text).toBe(true);
        // A priced model, named or the endpoint's default: the budget's 429; none at all: a 400 (model
        // required, or implied by an object tollgate cannot price: the key's policy).
        const priced = model !== undefined || !endpoint.model || typeof endpoint.model.rule === 'object';
        const expected = priced ? '429 insufficient_quota' : endpoint.model?.rule === 'implied' ? '400 model_required_by_key_policy' : `400 ${code}`;
        expect(`${endpoint.url} ${model ?? '(none)'} → ${answer.status} ${code}`).toBe(`${endpoint.url} ${model ?? '(none)'} → ${expected}`);
      }
    }
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual([]);
    expect(answers.length).toBe(units.length * 2 - units.filter((e) => !e.model).length);
  }, 120_000);

  it('a key without limits: only canonical paths, accepted content types and string models reach the upstream', async () => {
    upstream.reset();
    const answers = await run(OPEN);
    const wrongly = answers
      .filter((a) => reached(a.tag))
      .filter(({ c }) => {
        const accepted = accepts(c);
        // An endpoint that names no model (containers) does not read the field: any shape may pass.
        const modelOk = !c.endpoint.model || c.shape === 'allowed' || c.shape === 'disallowed' || (c.shape === 'missing' && c.endpoint.model.rule !== 'required');
        return c.pathForm !== 'canonical' || !accepted || !modelOk;
      })
      .map((a) => label(a.c));
    expect(wrongly).toEqual([]);
    const refusedUnshaped = answers.filter((a) => !reached(a.tag) && !isOpenAIError(a.text)).map((a) => `${label(a.c)} → ${a.status} ${a.text.slice(0, 80)}`);
    expect(refusedUnshaped).toEqual([]);
    // The plain, well-formed request does go through (a model the catalogue knows).
    const plain = answers.filter(({ c }) => c.pathForm === 'canonical' && c.shape === 'allowed' && c.contentType === (c.endpoint.body === 'multipart' ? 'multipart' : 'json'));
    expect(plain.filter((a) => !reached(a.tag)).map((a) => `${label(a.c)} → ${a.status} ${a.text.slice(0, 120)}`)).toEqual([]);
  }, 120_000);
  it(`unmetered POSTs (${UNMETERED_POSTS.length}): a key past its RPD reaches nothing; without limits only canonical paths and accepted content types do`, async () => {
    expect(UNMETERED_POSTS.map((e) => e.url)).toEqual(expect.arrayContaining(['/v1/realtime/calls/:call_id/hangup', '/v1/realtime/calls/:call_id/refer', '/v1/realtime/calls/:call_id/reject', '/v1/files']));
    // Spend the day's request in both buckets the run meets: without a model, and gpt-4.1-nano's.
    upstream.reset();
    await send('/v1/realtime/calls/x1/hangup', undefined, Buffer.alloc(0), SPENT);
    await send('/v1/responses/input_tokens', 'application/json', Buffer.from('{"model":"gpt-4.1-nano","input":"hi"}'), SPENT);
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/realtime/calls/x1/hangup', 'POST /v1/responses/input_tokens']);
    upstream.reset();
    const spent = await run(SPENT, true);
    expect(spent.filter((a) => a.status < 400).map((a) => `${label(a.c)} → ${a.status}`)).toEqual([]);
    expect(spent.filter((a) => !isOpenAIError(a.text)).map((a) => `${label(a.c)} → ${a.status} ${a.text.slice(0, 80)}`)).toEqual([]);
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual([]);

    const answers = await run(OPEN, true);
    expect(answers.filter((a) => reached(a.tag) && (a.c.pathForm !== 'canonical' || !accepts(a.c))).map((a) => label(a.c))).toEqual([]);
    expect(answers.filter((a) => !reached(a.tag) && !isOpenAIError(a.text)).map((a) => `${label(a.c)} → ${a.status} ${a.text.slice(0, 80)}`)).toEqual([]);
    const plain = answers.filter(({ c }) => c.pathForm === 'canonical' && c.contentType === (c.endpoint.body === 'multipart' ? 'multipart' : 'json'));
    expect(plain.filter((a) => !reached(a.tag)).map((a) => `${label(a.c)} → ${a.status} ${a.text.slice(0, 120)}`)).toEqual([]);
  }, 120_000);
});
