// Counting a batch file while its multipart upload streams past (issue 3, point 6): the form as
// the platform's FormData encodes it (as the openai SDK sends it), split anywhere.
import { describe, expect, it } from 'vitest';
import { createUploadCounter, type UploadCount } from '../../src/batch/upload-counter.js';
import { JsonlTokenCounter } from '../../src/batch/jsonl-counter.js';

const line = (id: string, content: string) =>
  JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4.1-nano', messages: [{ role: 'user', content }], max_tokens: 10 } });
const JSONL = `${line('a', 'héllo 👋 wörld')}\n${line('b', '€ and more text here')}\n`;
const OPTIONS = { charsPerToken: 4 };

async function encode(fields: [string, string | Blob, string?][]): Promise<{ contentType: string; body: Buffer }> {
  const form = new FormData();
  for (const [name, value, filename] of fields) {
    if (typeof value === 'string') form.append(name, value);
    else form.append(name, value, filename);
  }
  const response = new Response(form);
  return { contentType: response.headers.get('content-type') ?? '', body: Buffer.from(await response.arrayBuffer()) };
}

async function run(contentType: string, chunks: Buffer[]): Promise<UploadCount> {
  const counter = createUploadCounter(contentType, OPTIONS);
  if (!counter) throw new Error('no counter');
  for (const chunk of chunks) counter.push(chunk);
  return counter.finish();
}

const expectedFile = (() => {
  const counter = new JsonlTokenCounter(OPTIONS);
  counter.push(Buffer.from(JSONL));
  return counter.end();
})();

describe('multipart upload counter', () => {
  it('counts the file part and reads purpose written after it (the SDK’s usual order), for every split', async () => {
    const { contentType, body } = await encode([
      ['file', new Blob([JSONL]), 'batch.jsonl'],
      ['purpose', 'batch'],
    ]);
    expect(expectedFile.valid).toBe(true);
    expect(expectedFile.models[0]?.requests).toBe(2);
    for (let i = 0; i <= body.length; i++) {
      const result = await run(contentType, [body.subarray(0, i), body.subarray(i)]);
      expect(result, `split at ${i}`).toEqual({ purpose: 'batch', file: expectedFile });
    }
  });

  it('counts when purpose comes first, one byte at a time', async () => {
    const { contentType, body } = await encode([
      ['purpose', 'batch'],
      ['file', new Blob([JSONL]), 'batch.jsonl'],
    ]);
    const bytes: Buffer[] = [];
    for (let i = 0; i < body.length; i++) bytes.push(body.subarray(i, i + 1));
    expect(await run(contentType, bytes)).toEqual({ purpose: 'batch', file: expectedFile });
  });

  it('stops reading when purpose comes first and is not batch', async () => {
    const { contentType, body } = await encode([
      ['purpose', 'fine-tune'],
      ['file', new Blob([JSONL]), 'train.jsonl'],
    ]);
    expect(await run(contentType, [body])).toEqual({ purpose: 'fine-tune', file: undefined });
  });

  it('reports another purpose that comes after the file, without a count', async () => {
    const { contentType, body } = await encode([
      ['file', new Blob([JSONL]), 'data.jsonl'],
      ['purpose', 'user_data'],
    ]);
    expect(await run(contentType, [body])).toEqual({ purpose: 'user_data', file: undefined });
  });

  it('reports no file count when the body ends before the file part does', async () => {
    const { contentType, body } = await encode([
      ['file', new Blob([JSONL]), 'batch.jsonl'],
      ['purpose', 'batch'],
    ]);
    const cut = body.indexOf(Buffer.from('€'));
    expect(await run(contentType, [body.subarray(0, cut)])).toEqual({ purpose: undefined, file: undefined });
  });

  it('ignores a malformed body and non-multipart content types', async () => {
    expect(createUploadCounter('application/octet-stream', OPTIONS)).toBeUndefined();
    expect(createUploadCounter(undefined, OPTIONS)).toBeUndefined();
    expect(await run('multipart/form-data; boundary=xyz', [Buffer.from('not a form at all')])).toEqual({ purpose: undefined, file: undefined });
  });

  it('a binary file is no batch file', async () => {
    const { contentType, body } = await encode([
      ['file', new Blob([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])]), 'image.png'],
      ['purpose', 'batch'],
    ]);
    const result = await run(contentType, [body]);
    expect(result.file).toMatchObject({ valid: false });
  });
});
