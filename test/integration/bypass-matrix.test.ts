import { randomBytes } from 'node:crypto';
import { request as httpRequest, Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDPOINTS, type Endpoint } from '../../src/proxy/endpoints.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { openRealtime } from '../helpers/realtime-client.js';

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
 * - The WebSocket transport (`/v1/realtime`): upgrades × path forms × query model shapes × the
 *   ways a key is presented × keys (a used-up budget, an allow-list without the model, RPM spent,
 *   none of these); then, inside open sessions, events that name a model in every shape or hide a
 *   `response.create` (binary, escaped, duplicated keys), for a key whose TPM refuses every response.
 */

const RESTRICTED = 'tg-matrix-restricted-0123456789';
const BUDGET_ONLY = 'tg-matrix-budget-only-0123456789';
/** Realtime's own keys, one refusal each (so no row depends on the order of the others). */
const RT_KEYS = {
  budget: 'tg-matrix-rt-budget-0123456789',
  models: 'tg-matrix-rt-models-0123456789',
  rpm: 'tg-matrix-rt-rpm-0123456789abc',
  tpm: 'tg-matrix-rt-tpm-0123456789abc',
} as const;
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
        { id: 'rt-budget', key: RT_KEYS.budget, tier: 'tier-5', budget_usd: { daily: 0 } },
        { id: 'rt-models', key: RT_KEYS.models, tier: 'tier-5', models: ['gpt-4.1-nano'] },
        { id: 'rt-rpm', key: RT_KEYS.rpm, tier: 'tier-5', limits: { rpm: 1 } },
        { id: 'rt-tpm', key: RT_KEYS.tpm, tier: 'tier-5', limits: { tpm: 1 } },
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

// ---- The WebSocket transport: /v1/realtime.

type RtPath = 'canonical' | 'trailing-slash' | 'dot-segment' | 'encoded-slash' | 'encoded-char' | 'double-slash' | 'absolute-form' | 'other-endpoint';
const RT_PATHS: Record<RtPath, string> = {
  canonical: '/v1/realtime',
  'trailing-slash': '/v1/realtime/',
  'dot-segment': '/v1/files/../realtime',
  'encoded-slash': '/v1%2Frealtime',
  'encoded-char': '/v1/realtim%65',
  'double-slash': '/v1//realtime',
  'absolute-form': 'http://evil.example/v1/realtime',
  'other-endpoint': '/v1/chat/completions',
};

type RtModel = 'allowed' | 'disallowed' | 'missing' | 'array' | 'bracket' | 'object' | 'number';
/** The query's model in each shape a query string can give it. */
const RT_MODELS: Record<RtModel, string> = {
  allowed: 'model=gpt-realtime',
  disallowed: 'model=gpt-4o',
  missing: '',
  array: 'model=gpt-realtime&model=gpt-4o',
  bracket: 'model[]=gpt-realtime',
  object: `model=${encodeURIComponent('{"a":1}')}`,
  number: 'model=123',
};

type RtAuth = 'bearer' | 'subprotocol' | 'subprotocol-without-realtime' | 'bearer-and-other-subprotocol' | 'two-subprotocols' | 'basic' | 'none' | 'post' | 'upgrade-h2c' | 'bad-version' | 'bad-key';
/** How the key is presented, and the handshake's other variants (method, Upgrade, version, key). */
function rtHeaders(auth: RtAuth, secret: string): { method: string; headers: Record<string, string> } {
  const headers: Record<string, string> = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') };
  const other = secret === OPEN ? RT_KEYS.tpm : OPEN;
  let method = 'GET';
  switch (auth) {
    case 'bearer':
      headers.authorization = `Bearer ${secret}`;
      break;
    case 'subprotocol':
      headers['sec-websocket-protocol'] = `realtime, openai-insecure-api-key.${secret}`;
      break;
    case 'subprotocol-without-realtime':
      headers['sec-websocket-protocol'] = `openai-insecure-api-key.${secret}`;
      break;
    case 'bearer-and-other-subprotocol':
      headers.authorization = `Bearer ${secret}`;
      headers['sec-websocket-protocol'] = `realtime, openai-insecure-api-key.${other}`;
      break;
    case 'two-subprotocols':
      headers['sec-websocket-protocol'] = `realtime, openai-insecure-api-key.${secret}, openai-insecure-api-key.${other}`;
      break;
    case 'basic':
      headers.authorization = `Basic ${Buffer.from(`x:${secret}`).toString('base64')}`;
      break;
    case 'none':
      break;
    case 'post':
      method = 'POST';
      headers.authorization = `Bearer ${secret}`;
      break;
    case 'upgrade-h2c':
      headers.upgrade = 'h2c';
      headers.authorization = `Bearer ${secret}`;
      break;
    case 'bad-version':
      headers['sec-websocket-version'] = '12';
      headers.authorization = `Bearer ${secret}`;
      break;
    case 'bad-key':
      headers['sec-websocket-key'] = 'not-a-key';
      headers.authorization = `Bearer ${secret}`;
      break;
  }
  return { method, headers };
}
const RT_AUTHS: readonly RtAuth[] = ['bearer', 'subprotocol', 'subprotocol-without-realtime', 'bearer-and-other-subprotocol', 'two-subprotocols', 'basic', 'none', 'post', 'upgrade-h2c', 'bad-version', 'bad-key'];

/** One raw upgrade request: 101 (the socket is dropped at once) or the HTTP refusal. */
function upgrade(path: string, method: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...origin, agent: false, method, path, headers });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 101, text: '' });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface RtCase {
  readonly key: keyof typeof RT_KEYS | 'open';
  readonly path: RtPath;
  readonly model: RtModel;
  readonly auth: RtAuth;
}
const rtLabel = (c: RtCase): string => `${c.key} ${c.path} ${c.model} ${c.auth}`;

async function runUpgrades(keys: readonly RtCase['key'][]): Promise<{ c: RtCase; status: number; text: string; tag: string }[]> {
  const all: RtCase[] = [];
  for (const key of keys) for (const path of Object.keys(RT_PATHS) as RtPath[]) for (const model of Object.keys(RT_MODELS) as RtModel[]) for (const auth of RT_AUTHS) all.push({ key, path, model, auth });
  const out: { c: RtCase; status: number; text: string; tag: string }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < all.length) {
      const c = all[next++] as RtCase;
      const tag = `r${next}`;
      const query = [RT_MODELS[c.model], `case=${tag}`].filter(Boolean).join('&');
      const { method, headers } = rtHeaders(c.auth, c.key === 'open' ? OPEN : RT_KEYS[c.key]);
      out.push({ c, ...(await upgrade(`${RT_PATHS[c.path]}?${query}`, method, headers)), tag });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return out;
}

const upgradedWith = (tag: string): boolean => upstream.realtime.upgrades.some((u) => new URL(u, 'http://upstream').searchParams.get('case') === tag);
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 10));
}

/** Events that must never reach the upstream, whatever the key. */
const FORBIDDEN_EVENTS: readonly { readonly name: string; readonly frame: string | Buffer }[] = [
  { name: 'session.update to another model', frame: JSON.stringify({ type: 'session.update', event_id: 'x-su-other', session: { type: 'realtime', model: 'gpt-4o' } }) },
  { name: 'session.update model as array', frame: JSON.stringify({ type: 'session.update', event_id: 'x-su-array', session: { type: 'realtime', model: ['gpt-realtime'] } }) },
  { name: 'session.update model as object', frame: JSON.stringify({ type: 'session.update', event_id: 'x-su-object', session: { type: 'realtime', model: { name: 'gpt-realtime' } } }) },
  { name: 'session.update model as number', frame: JSON.stringify({ type: 'session.update', event_id: 'x-su-number', session: { type: 'realtime', model: 123 } }) },
  { name: 'session.update model null', frame: JSON.stringify({ type: 'session.update', event_id: 'x-su-null', session: { type: 'realtime', model: null } }) },
  { name: 'response.create with another model', frame: JSON.stringify({ type: 'response.create', event_id: 'x-rc-other', response: { model: 'gpt-4o' } }) },
  { name: 'response.create model as array', frame: JSON.stringify({ type: 'response.create', event_id: 'x-rc-array', response: { model: ['gpt-realtime'] } }) },
  { name: 'response.create model as object', frame: JSON.stringify({ type: 'response.create', event_id: 'x-rc-object', response: { model: { name: 'gpt-realtime' } } }) },
  { name: 'response.create as a binary frame', frame: Buffer.from(JSON.stringify({ type: 'response.create', event_id: 'x-rc-binary' })) },
  { name: 'not JSON', frame: '{"type":"response.create",' },
  { name: 'a JSON array', frame: JSON.stringify([{ type: 'response.create', event_id: 'x-rc-in-array' }]) },
  { name: 'no type', frame: JSON.stringify({ event_id: 'x-no-type', response: {} }) },
];
/** Events that start a response in disguise: refused for the TPM key, forwarded (as read) for the open one. */
const DISGUISED_RESPONSES: readonly { readonly name: string; readonly frame: string; readonly id: string }[] = [
  { name: 'plain response.create', frame: JSON.stringify({ type: 'response.create', event_id: 'y-plain' }), id: 'y-plain' },
  { name: 'response.create naming the session model', frame: JSON.stringify({ type: 'response.create', event_id: 'y-same', response: { model: 'gpt-realtime' } }), id: 'y-same' },
  { name: 'escaped type', frame: '{"type":"response\\u002ecreate","event_id":"y-escaped"}', id: 'y-escaped' },
  { name: 'duplicated type key', frame: '{"type":"session.update","type":"response.create","event_id":"y-duplicate"}', id: 'y-duplicate' },
  { name: 'append whose duplicated type key says response.create', frame: '{"type":"input_audio_buffer.append","audio":"AAAA","type":"response.create","event_id":"y-append"}', id: 'y-append' },
];

describe('bypass matrix: realtime over WebSocket', () => {
  it('keys with a used-up budget, an allow-list without the model, or RPM spent: no upgrade reaches the upstream, every refusal is OpenAI-shaped', async () => {
    // Spend rt-rpm's one request on a session of its own first.
    const spent = await openRealtime(`ws://${origin.host}:${origin.port}/v1/realtime?model=gpt-realtime`, undefined, { headers: { authorization: `Bearer ${RT_KEYS.rpm}` } });
    spent.ws.close();
    await spent.closed;
    upstream.realtime.upgrades.length = 0;
    const answers = await runUpgrades(['budget', 'models', 'rpm']);
    expect(answers.filter((a) => a.status < 400).map((a) => `${rtLabel(a.c)} → ${a.status}`)).toEqual([]);
    expect(answers.filter((a) => !isOpenAIError(a.text)).map((a) => `${rtLabel(a.c)} → ${a.status} ${a.text.slice(0, 80)}`)).toEqual([]);
    // Each key's own refusal where the request is otherwise well-formed.
    const plain = (key: RtCase['key']) => answers.find((a) => a.c.key === key && a.c.path === 'canonical' && a.c.model === 'allowed' && a.c.auth === 'bearer');
    expect(plain('budget')).toMatchObject({ status: 429, text: expect.stringContaining('insufficient_quota') });
    expect(plain('models')).toMatchObject({ status: 403 });
    expect(plain('rpm')).toMatchObject({ status: 429, text: expect.stringContaining('requests per min') });
    // Ephemeral secrets of these keys do not open a session either.
    for (const key of ['budget', 'models', 'rpm'] as const) {
      const minted = await fetch(`http://${origin.host}:${origin.port}/v1/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${RT_KEYS[key]}`, 'content-type': 'application/json' }, body: JSON.stringify({ session: { type: 'realtime', model: 'gpt-realtime' } }) });
      if (minted.status !== 200) continue;
      const { value } = (await minted.json()) as { value: string };
      const { headers } = rtHeaders('subprotocol', value);
      const answer = await upgrade('/v1/realtime?model=gpt-realtime', 'GET', headers);
      expect(answer.status, key).toBeGreaterThanOrEqual(400);
      expect(isOpenAIError(answer.text), key).toBe(true);
    }
    expect(upstream.realtime.upgrades).toEqual([]);
  }, 120_000);

  it('a key without limits: only the canonical path, a realtime model given once by name, and one key presented properly reach the upstream', async () => {
    upstream.realtime.upgrades.length = 0;
    const answers = await runUpgrades(['open']);
    // (`disallowed` is gpt-4o here: not a realtime model, 404 model_not_found.)
    const wellFormed = (c: RtCase): boolean => c.path === 'canonical' && c.model === 'allowed' && (c.auth === 'bearer' || c.auth === 'subprotocol');
    expect(answers.filter((a) => upgradedWith(a.tag) && !wellFormed(a.c)).map((a) => rtLabel(a.c))).toEqual([]);
    expect(answers.filter((a) => !upgradedWith(a.tag) && !isOpenAIError(a.text)).map((a) => `${rtLabel(a.c)} → ${a.status} ${a.text.slice(0, 80)}`)).toEqual([]);
    // The well-formed ones do get through (the test can fail both ways).
    expect(answers.filter((a) => wellFormed(a.c)).map((a) => `${rtLabel(a.c)} → ${a.status}`)).toEqual(answers.filter((a) => wellFormed(a.c)).map((a) => `${rtLabel(a.c)} → 101`));
  }, 120_000);

  it('WebRTC calls (SDP offers, as raw SDP or a form) and accepting a SIP call are refused in every form, for every key: nothing reaches the upstream (hang-up, refer and reject are unmetered POSTs, above)', async () => {
    upstream.reset();
    upstream.realtime.upgrades.length = 0;
    const sdp = 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n';
    const form = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="sdp"\r\n\r\n${sdp}\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="session"\r\n\r\n{"type":"realtime","model":"gpt-realtime"}\r\n--${BOUNDARY}--\r\n`;
    const bodies: [string, string | undefined, Buffer][] = [
      ['sdp', 'application/sdp', Buffer.from(sdp)],
      ['multipart', `multipart/form-data; boundary=${BOUNDARY}`, Buffer.from(form)],
      ['json', 'application/json', Buffer.from(JSON.stringify({ sdp, session: { type: 'realtime', model: 'gpt-realtime' } }))],
      ['none', undefined, Buffer.alloc(0)],
    ];
    const paths = ['/v1/realtime/calls', '/v1/realtime/calls/', '/v1/realtime/calls?model=gpt-realtime', '/v1//realtime/calls', '/v1/realtime%2Fcalls', '/v1/realtime/calls/rtc_x1/accept', '/v1/realtime/calls/rtc_x1/accept/', '/v1/realtime/calls/rtc_x1/refer/', '/v1/realtime//calls/rtc_x1/reject'];
    const answers: string[] = [];
    for (const secret of [OPEN, ...Object.values(RT_KEYS)]) {
      for (const path of paths) {
        for (const [name, type, payload] of bodies) {
          const answer = await send(path, type, payload, secret);
          if (answer.status < 400 || !isOpenAIError(answer.text)) answers.push(`${path} ${name} → ${answer.status} ${answer.text.slice(0, 80)}`);
        }
      }
    }
    expect(answers).toEqual([]);
    const offer = await send('/v1/realtime/calls', 'application/sdp', Buffer.from(sdp), OPEN);
    expect(offer.status).toBe(403);
    expect(JSON.parse(offer.text)).toMatchObject({ error: { code: 'endpoint_not_served', message: expect.stringContaining('WebRTC call') } });
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual([]);
    // Nor can a WebSocket attach to a call by id (OpenAI's sideband for WebRTC calls).
    const { headers } = rtHeaders('bearer', OPEN);
    expect(await upgrade('/v1/realtime?call_id=rtc_x1', 'GET', headers)).toMatchObject({ status: 400, text: expect.stringContaining('call_id') });
    expect(upstream.realtime.upgrades).toEqual([]);
  }, 60_000);

  it('inside a session: events naming another model in any shape, binary and malformed frames never reach the upstream; a key whose TPM refuses every response gets none through in any disguise', async () => {
    const reachedIds = async (secret: string, frames: readonly (string | Buffer)[]): Promise<{ ids: unknown[]; frames: number }> => {
      const before = upstream.realtime.sessions.length;
      const rt = await openRealtime(`ws://${origin.host}:${origin.port}/v1/realtime?model=gpt-realtime`, undefined, { headers: { authorization: `Bearer ${secret}` } });
      await rt.next('session.created');
      for (const frame of frames) rt.ws.send(frame, { binary: Buffer.isBuffer(frame) });
      // Frames are relayed in order: once the marker is upstream, everything before it was decided.
      rt.send({ type: 'conversation.item.create', event_id: 'marker', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'marker' }] } });
      const session = upstream.realtime.sessions[before];
      await until(() => session?.events.some((e) => e.event_id === 'marker') ?? false);
      rt.ws.close();
      await rt.closed;
      return { ids: session?.events.map((e) => e.event_id) ?? [], frames: session?.frames ?? -1 };
    };
    const forbidden = FORBIDDEN_EVENTS.map((e) => e.frame);
    const disguised = DISGUISED_RESPONSES.map((e) => e.frame);

    const open = await reachedIds(OPEN, [...forbidden, ...disguised]);
    expect(open.ids).toEqual([...DISGUISED_RESPONSES.map((e) => e.id), 'marker']);
    expect(open.frames).toBe(open.ids.length);

    const tpm = await reachedIds(RT_KEYS.tpm, [...forbidden, ...disguised]);
    expect(tpm).toEqual({ ids: ['marker'], frames: 1 });
  }, 60_000);
});
