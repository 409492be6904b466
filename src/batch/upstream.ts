import { readAnswer } from '../upstream/buffered.js';
import type { Upstream } from '../upstream/client.js';
import { upstreamRequestHeaders, type UpstreamIdentity } from '../upstream/headers.js';
import type { BatchLookup } from './queue.js';

export { AnswerTooLargeError, readAnswer } from '../upstream/buffered.js';

/** `GET /batches/{id}` with the gateway's own credential, for the periodic check. */
export function upstreamBatchLookup(upstream: Upstream, identity: UpstreamIdentity, timeoutMs = 30_000): BatchLookup {
  return async (batchId) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const response = await upstream.send({
      method: 'GET',
      path: `/batches/${encodeURIComponent(batchId)}`,
      headers: upstreamRequestHeaders({}, identity, { identityEncoding: true }),
      body: undefined,
      signal,
    });
    return { status: response.status, body: await readAnswer(response.body, 1024 * 1024) };
  };
}
