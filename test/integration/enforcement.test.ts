import { request as httpRequest } from 'node:http';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';

/**
 * Issue "Enforcement without holes", items 1–7: each way a client used to get past the key's
 * limits, allow-list and budget, tried the way the reproduction did. Each fails on the code
 * before the fix (the request reached the upstream).
 */

const LIMITED = 'tg-enf-limited-0123456789abcdef'; // rpm 1
const LISTED = 'tg-enf-listed-0123456789abcdef'; // allow-list gpt-4.1-nano
const OPEN = 'tg-enf-open-0123456789abcdef';

let upstream: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
  gateway = await startGateway({
    upstreamUrl: upstream.url,
    config: {
      server: { unauthenticated_rpm: 0 },
      models: { unknown: 'pass_through' },
      keys: [
        { id: 'limited', key: LIMITED, tier: 'tier-5', limits: { rpm: 1 } },
        { id: 'listed', key: LISTED, tier: 'tier-5', models: ['gpt-4.1-nano', 'whisper-1'] },
        { id: 'open', key: OPEN, tier: 'tier-5' },
      ],
    },
  });
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

const CHAT = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });

async function post(path: string, secret: string, body: string | Buffer, contentType?: string): Promise<{ status: number; json: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown> }> {
  const headers: Record<string, string> = { authorization: `Bearer ${secret}` };
  if (contentType !== undefined) headers['content-type'] = contentType;
  const res = await fetch(`${gateway.origin}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? Buffer.from(body) : body });
  return { status: res.status, json: (await res.json()) as never };
}

/** A raw request whose target is sent exactly as given (absolute-form, dot segments). */
function raw(method: string, target: string, secret: string): Promise<{ status: number; text: string }> {
  const url = new URL(gateway.origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: target, agent: false, headers: { authorization: `Bearer ${secret}`, 'content-length': '0' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sentUpstream = (path: string): number => upstream.requests.filter((r) => r.path.split('?')[0] === path).length;

describe('1. content types', () => {
  it.each(['text/plain', undefined, 'application/x-www-form-urlencoded', 'text/json', 'application/vnd.api+json', 'application/json; charset=latin1'])(
    'a JSON body sent as %s is refused with 400, never forwarded',
    async (contentType) => {
      const before = sentUpstream('/v1/chat/completions');
      const answer = await post('/v1/chat/completions', OPEN, CHAT, contentType);
      expect(answer.status).toBe(400);
      expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_content_type' });
      expect(answer.json.error?.message).toContain("This API method only accepts 'application/json' requests");
      expect(sentUpstream('/v1/chat/completions')).toBe(before);
    },
  );

  it('a body on a GET is refused, not forwarded', async () => {
    const url = new URL(gateway.origin);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, method: 'GET', path: '/v1/models', agent: false, headers: { authorization: `Bearer ${OPEN}`, 'content-type': 'application/json' } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('{"model":"gpt-4o"}');
    });
    expect(status).toBe(400);
  });
});

describe('2 and 6. path forms', () => {
  it.each([
    ['POST', '/v1/chat/completions/'],
    ['POST', '/v1/responses/'],
    ['GET', '/v1/files/../organization/users'],
    ['GET', '/v1/files/..'],
    ['GET', '/v1/files/%2E%2E'],
    ['GET', '/v1/files/file-1%2Fcontent'],
    ['GET', '/v1//models'],
    ['POST', 'http://evil.example/v1/chat/completions'],
  ])('%s %s → 404 Invalid URL, never forwarded', async (method, target) => {
    const before = upstream.requests.length;
    const answer = await raw(method, target, OPEN);
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'invalid_request_error', code: null } });
    expect(JSON.parse(answer.text).error.message).toMatch(/^Invalid URL/);
    expect(upstream.requests.length).toBe(before);
  });
});

describe('3. model shapes', () => {
  it.each([
    [123, 'an integer'],
    [1.5, 'a decimal'],
    [{ a: 1 }, 'an object'],
    [['gpt-4o'], 'an array'],
  ])('model %j → 400 invalid_type, never forwarded', async (model, got) => {
    const before = sentUpstream('/v1/chat/completions');
    const answer = await post('/v1/chat/completions', OPEN, JSON.stringify({ model, messages: [] }), 'application/json');
    expect(answer.status).toBe(400);
    expect(answer.json.error).toEqual({ message: `Invalid type for 'model': expected a string, but got ${got} instead.`, type: 'invalid_request_error', param: 'model', code: 'invalid_type' });
    expect(sentUpstream('/v1/chat/completions')).toBe(before);
  });

  it('a chat request without a model is refused as OpenAI does', async () => {
    const answer = await post('/v1/chat/completions', OPEN, JSON.stringify({ messages: [] }), 'application/json');
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ message: 'you must provide a model parameter', param: 'model' });
  });
});

describe('4. requests without a model', () => {
  const storedPrompt = JSON.stringify({ prompt: { id: 'pmpt_123' }, input: 'hi' });

  it('count against the key\'s RPM: the second of an rpm-1 key is refused with 429', async () => {
    const before = sentUpstream('/v1/responses');
    await post('/v1/responses', LIMITED, storedPrompt, 'application/json');
    // Admitted and forwarded (the fake upstream itself wants a model and says so).
    expect(sentUpstream('/v1/responses')).toBe(before + 1);
    const second = await post('/v1/responses', LIMITED, storedPrompt, 'application/json');
    expect(second.status).toBe(429);
    expect(second.json.error?.code).toBe('rate_limit_exceeded');
    expect(sentUpstream('/v1/responses')).toBe(before + 1);
  });

  it('are refused for a key with an allow-list: its policy needs the model', async () => {
    const before = sentUpstream('/v1/responses');
    const answer = await post('/v1/responses', LISTED, storedPrompt, 'application/json');
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ code: 'model_required_by_key_policy', param: 'model' });
    expect(sentUpstream('/v1/responses')).toBe(before);
  });
});

describe('5. multipart uploads name their model', () => {
  const audio = async () => toFile(Buffer.from('RIFF....WAVEfmt '), 'speech.wav', { type: 'audio/wav' });

  it('a transcription with a model outside the allow-list is refused before the upload goes upstream (file before model, as the SDK sends it)', async () => {
    const client = gateway.client({ apiKey: LISTED, maxRetries: 0 });
    const before = sentUpstream('/v1/audio/transcriptions');
    const refused = await client.audio.transcriptions.create({ file: await audio(), model: 'gpt-4o-transcribe' }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe('model_not_found');
    expect(sentUpstream('/v1/audio/transcriptions')).toBe(before);
  });

  it('an allowed one is forwarded byte for byte', async () => {
    const client = gateway.client({ apiKey: LISTED, maxRetries: 0 });
    const text = await client.audio.transcriptions.create({ file: await audio(), model: 'whisper-1' });
    expect(typeof text.text).toBe('string');
    const sent = upstream.requests.filter((r) => r.path === '/v1/audio/transcriptions').at(-1);
    expect(sent?.body.includes(Buffer.from('RIFF....WAVEfmt '))).toBe(true);
    expect(sent?.headers['content-length']).toBe(String(sent?.body.length));
  });

  it('a form that names the model twice is refused', async () => {
    const b = 'dupe';
    const form = `--${b}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--${b}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n--${b}--\r\n`;
    const answer = await post('/v1/audio/transcriptions', OPEN, form, `multipart/form-data; boundary=${b}`);
    expect(answer.status).toBe(400);
    expect(answer.json.error?.param).toBe('model');
  });

  it('a transcription without a model is refused', async () => {
    const b = 'nomodel';
    const form = `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n--${b}--\r\n`;
    const answer = await post('/v1/audio/transcriptions', OPEN, form, `multipart/form-data; boundary=${b}`);
    expect(answer.status).toBe(400);
    expect(answer.json.error?.message).toBe('you must provide a model parameter');
  });
});

describe('7. models within the allow-list', () => {
  it('GET /v1/models lists only what the key may use', async () => {
    const all = await gateway.client({ apiKey: OPEN }).models.list();
    expect(all.data.map((m) => m.id)).toEqual(expect.arrayContaining(['gpt-4.1-nano', 'text-embedding-3-small']));
    const listed = await gateway.client({ apiKey: LISTED }).models.list();
    const ids = listed.data.map((m) => m.id);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.filter((id) => !['gpt-4.1-nano', 'gpt-4.1-nano-2025-04-14', 'whisper-1'].includes(id))).toEqual([]);
    expect(all.data.length).toBeGreaterThan(ids.length);
  });

  it('GET /v1/models/{id} outside the allow-list is 404 model_not_found, never forwarded', async () => {
    const before = sentUpstream('/v1/models/gpt-4o');
    const refused = await gateway.client({ apiKey: LISTED, maxRetries: 0 }).models.retrieve('gpt-4o').catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe('model_not_found');
    expect(sentUpstream('/v1/models/gpt-4o')).toBe(before);
    expect((await gateway.client({ apiKey: LISTED }).models.retrieve('gpt-4.1-nano')).id).toBe('gpt-4.1-nano');
  });
});

describe('refusals after authentication count as requests', () => {
  it('a malformed request on an rpm-1 key uses its request: the next valid one gets 429', async () => {
    const key = 'tg-enf-fresh-0123456789abcdef';
    const fresh = await startGateway({ upstreamUrl: upstream.url, config: { keys: [{ id: 'fresh', key, tier: 'tier-5', limits: { rpm: 1 } }] } });
    try {
      const bad = await fetch(`${fresh.url}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [], max_tokens: 10 ** 9 }) });
      expect(bad.status).toBe(400);
      const good = await fetch(`${fresh.url}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] }) });
      expect(good.status).toBe(429);
    } finally {
      await fresh.close();
    }
  });
});

describe("the organisation's admin API", () => {
  it.each([
    ['GET', '/v1/organization/users'],
    ['POST', '/v1/organization/admin_api_keys'],
    ['GET', '/v1/projects/proj_1/roles'],
    ['GET', '/v1/fine_tuning/checkpoints/ft-1/permissions'],
  ])('%s %s → 403 admin_api_not_served, never forwarded, with or without a key', async (method, path) => {
    const before = upstream.requests.length;
    for (const secret of [OPEN, 'sk-admin-not-a-tollgate-key']) {
      const answer = await raw(method, path, secret);
      expect(answer.status).toBe(403);
      expect(JSON.parse(answer.text).error).toMatchObject({ type: 'invalid_request_error', code: 'admin_api_not_served' });
    }
    expect(upstream.requests.length).toBe(before);
  });
});

describe('5. batches run the models their file names', () => {
  const line = (model: string, i: number): string =>
    `${JSON.stringify({ custom_id: `c${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'hi' }] } })}\n`;
  const createBatch = (secret: string, fileId: string) =>
    gateway.client({ apiKey: secret, maxRetries: 0 }).batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
  const batchCreates = (fileId: string) => upstream.requests.filter((r) => r.method === 'POST' && r.path === '/v1/batches' && r.body.toString().includes(fileId)).length;

  it('a key with an allow-list cannot batch a model outside it, nor a file tollgate did not count', async () => {
    const client = gateway.client({ apiKey: LISTED, maxRetries: 0 });
    const mixed = await client.files.create({ file: await toFile(Buffer.from(line('gpt-4.1-nano', 0) + line('gpt-4o', 1)), 'mixed.jsonl'), purpose: 'batch' });
    const refused = await createBatch(LISTED, mixed.id).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).message).toContain('gpt-4o');
    expect(batchCreates(mixed.id)).toBe(0);

    const unseen = await createBatch(LISTED, 'file-never-seen').catch((err: unknown) => err);
    expect(unseen).toBeInstanceOf(OpenAI.BadRequestError);
    expect((unseen as InstanceType<typeof OpenAI.APIError>).code).toBe('model_required_by_key_policy');
    expect(batchCreates('file-never-seen')).toBe(0);

    const fine = await client.files.create({ file: await toFile(Buffer.from(line('gpt-4.1-nano', 0) + line('gpt-4.1-nano-2025-04-14', 1)), 'fine.jsonl'), purpose: 'batch' });
    expect((await createBatch(LISTED, fine.id)).status).toBe('validating');
    expect(batchCreates(fine.id)).toBe(1);
  });
});
