// Public entry of the fake OpenAI upstream used by tests, the mock-upstream CLI and the benchmark.
// The implementation lives in ./fake-upstream/.
export { startFakeUpstream } from './fake-upstream/index.js';
export type { FakeStep, FakeUpstream, FakeUpstreamOptions } from './fake-upstream/index.js';
import type { RecordedRequest } from './fake-upstream/common.js';
export type { RecordedRequest };
export { CREATED, fakeChunk, fakeText } from './fake-upstream/common.js';
export { FAKE_PNG_B64, fakeEmbedding, fakeSpeechBytes } from './fake-upstream/media.js';

/** Parses a recorded multipart/form-data request body (e.g. a file upload) into FormData. */
export async function parseRecordedForm(rec: RecordedRequest): Promise<FormData> {
  const ct = rec.headers['content-type'] ?? '';
  return new Request('http://fake.invalid/', { method: 'POST', headers: { 'content-type': ct }, body: rec.body }).formData();
}
