// What the openai SDK's own API-resource suite found through tollgate (docs/compatibility.md):
// realtime SIP call control, output caps the upstream takes, and multipart fields tollgate does
// not read. Real SDK, real Redis, the fake upstream over HTTP.
import { request as httpRequest } from 'node:http';
import OpenAI, { toFile } from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseRecordedForm } from '../helpers/fake-upstream.js';
import { useGateway } from '../helpers/gateway.js';
import { deleteByPrefix, uniquePrefix } from '../helpers/redis.js';

const OPEN = 'tg-sdk-compat-open-0123456789';
const TWO_RPM = 'tg-sdk-compat-rpm2-0123456789';
const LISTED = 'tg-sdk-compat-listed-012345678';
const PREFIX = uniquePrefix('sdk-compat');

const fx = useGateway(() => ({
  redisUrl: inject('redisUrl'),
  config: {
    limits: { key_prefix: PREFIX, redis_timeout_ms: 5000 },
    keys: [
      { id: 'open', key: OPEN, tier: 'tier-5' },
      { id: 'two-rpm', key: TWO_RPM, tier: 'tier-5', limits: { rpm: 2 } },
      { id: 'listed', key: LISTED, tier: 'tier-5', models: ['gpt-4.1-nano'] },
    ],
  },
}));
let redis: Redis;
let sdk: OpenAI;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
  sdk = fx.gateway.client({ apiKey: OPEN });
});
afterAll(async () => {
  if (redis) {
    await deleteByPrefix(redis, PREFIX);
    redis.disconnect();
  }
});

const paths = (): string[] => fx.upstream.requests.map((r) => `${r.method} ${r.path}`);
const jsonOf = (i: number): Record<string, unknown> => JSON.parse((fx.upstream.requests[i]?.body ?? Buffer.alloc(0)).toString('utf8') || '{}') as Record<string, unknown>;

describe('realtime SIP call control', () => {
  it('hangup, refer and reject reach the upstream as sent', async () => {
    await sdk.realtime.calls.hangup('call_1');
    await sdk.realtime.calls.refer('call_1', { target_uri: 'tel:+14155550123' });
    await sdk.realtime.calls.reject('call_1', { status_code: 486 });
    await sdk.realtime.calls.reject('call_2');
    expect(paths()).toEqual([
      'POST /v1/realtime/calls/call_1/hangup',
      'POST /v1/realtime/calls/call_1/refer',
      'POST /v1/realtime/calls/call_1/reject',
      'POST /v1/realtime/calls/call_2/reject',
    ]);
    expect(jsonOf(1)).toEqual({ target_uri: 'tel:+14155550123' });
    expect(jsonOf(2)).toEqual({ status_code: 486 });
  });

  it("count against the key's RPM: the third call of a 2-rpm key is refused and not forwarded", async () => {
    const limited = fx.gateway.client({ apiKey: TWO_RPM });
    await limited.realtime.calls.hangup('call_1');
    await limited.realtime.calls.reject('call_1');
    const third = await limited.realtime.calls.hangup('call_1').catch((err: unknown) => err);
    expect(third).toBeInstanceOf(OpenAI.RateLimitError);
    expect((third as InstanceType<typeof OpenAI.RateLimitError>).error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    expect(paths()).toEqual(['POST /v1/realtime/calls/call_1/hangup', 'POST /v1/realtime/calls/call_1/reject']);
  });

  it('accept (a session whose audio and tokens never pass the gateway) is refused with 403 and not forwarded', async () => {
    const err = await sdk.realtime.calls.accept('call_1', { type: 'realtime', model: 'gpt-realtime' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).error).toMatchObject({ type: 'invalid_request_error', code: 'endpoint_not_served' });
    expect(paths()).toEqual([]);
  });

  it('a body on hangup other than JSON is refused, not forwarded', async () => {
    const answer = await raw('/v1/realtime/calls/call_1/hangup', 'text/plain', Buffer.from('bye'));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text).error).toMatchObject({ code: 'unsupported_content_type' });
    expect(paths()).toEqual([]);
  });
});

describe("output caps: the range is the upstream's to check", () => {
  it('max_completion_tokens: 0 (the reference sets no minimum) is forwarded', async () => {
    const completion = await sdk.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 0 });
    expect(completion.object).toBe('chat.completion');
    expect(jsonOf(0).max_completion_tokens).toBe(0);
  });

  it('legacy completions max_tokens: 0 (the reference minimum) is forwarded', async () => {
    await sdk.completions.create({ model: 'gpt-4.1-nano', prompt: 'hi', max_tokens: 0, echo: true });
    expect(jsonOf(0)).toMatchObject({ max_tokens: 0, echo: true });
  });

  it("a negative or fractional cap is forwarded as sent, and the upstream's 400 relayed", async () => {
    for (const cap of [-1, 2.5, '16']) {
      fx.upstream.reset();
      fx.upstream.script({ status: 400 });
      const err = await sdk.chat.completions
        .create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: cap as number })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(jsonOf(0).max_completion_tokens).toBe(cap);
    }
  });

  it("a cap above the catalogued model's maximum is still refused as OpenAI refuses it, not forwarded", async () => {
    const err = await sdk.chat.completions
      .create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 10_000_000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'max_completion_tokens', code: 'invalid_value' });
    expect(paths()).toEqual([]);
  });
});

describe('model: null where the reference makes it nullable', () => {
  it("is no model named: the endpoint's default applies, and the request is forwarded as sent", async () => {
    const images = await sdk.images.generate({ prompt: 'a fox', model: null });
    expect(images.data?.length).toBe(1);
    expect(jsonOf(0)).toMatchObject({ model: null, prompt: 'a fox' });
  });

  it('a key with an allow-list is asked to name the model, as when the field is absent; nothing is forwarded', async () => {
    const listed = fx.gateway.client({ apiKey: LISTED });
    const err = await listed.beta.threads.runs.create('thread_1', { assistant_id: 'asst_1', model: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'model', code: 'model_required_by_key_policy' });
    expect(paths()).toEqual([]);
  });

  it('a required model stays a string: null is refused as OpenAI refuses it, not forwarded', async () => {
    const err = await sdk.chat.completions.create({ model: null as unknown as string, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({
      message: "Invalid type for 'model': expected a string, but got null instead.",
      param: 'model',
      code: 'invalid_type',
    });
    expect(paths()).toEqual([]);
  });
});

describe('multipart forms: only the fields tollgate reads must be single and short', () => {
  const audio = (): Promise<File> => toFile(Buffer.from('RIFF0000WAVEfmt '), 'a.wav', { type: 'audio/wav' });

  it('array fields (timestamp_granularities[], include[]) repeat and are forwarded whole', async () => {
    await sdk.audio.transcriptions.create({
      model: 'gpt-4o-transcribe',
      file: await audio(),
      response_format: 'verbose_json',
      timestamp_granularities: ['word', 'segment'],
      include: ['logprobs'],
    });
    expect(paths()).toEqual(['POST /v1/audio/transcriptions']);
    const form = await parseRecordedForm(fx.upstream.requests[0]!);
    expect(form.getAll('timestamp_granularities[]')).toEqual(['word', 'segment']);
    expect(form.getAll('include[]')).toEqual(['logprobs']);
  });

  it('a text field longer than 1 MiB that tollgate does not read is forwarded whole', async () => {
    const prompt = 'p'.repeat(1536 * 1024);
    await sdk.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await audio(), prompt });
    const form = await parseRecordedForm(fx.upstream.requests[0]!);
    expect(form.get('prompt')).toBe(prompt);
  });

  it('the model field given twice, or too long, is refused and not forwarded', async () => {
    for (const [parts, message] of [
      [[field('model', 'gpt-4o-transcribe'), field('model', 'whisper-1')], "The form field 'model' was given more than once."],
      [[field('model', 'm'.repeat(1024 * 1024 + 1))], "The form field 'model' is too long."],
    ] as const) {
      const answer = await raw('/v1/audio/transcriptions', `multipart/form-data; boundary=${BOUNDARY}`, form([...parts, file()]));
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.text).error).toEqual({ message, type: 'invalid_request_error', param: 'model', code: 'invalid_multipart' });
    }
    expect(paths()).toEqual([]);
  });
});

const BOUNDARY = 'sdkcompatboundary';
const field = (name: string, value: string): string => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const file = (): string => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF0000WAVE\r\n`;
const form = (parts: readonly string[]): Buffer => Buffer.from(`${parts.join('')}--${BOUNDARY}--\r\n`);

function raw(path: string, contentType: string, payload: Buffer): Promise<{ status: number; text: string }> {
  const url = new URL(fx.gateway.origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: Number(url.port),
        method: 'POST',
        path,
        headers: { authorization: `Bearer ${OPEN}`, 'content-type': contentType, 'content-length': String(payload.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
