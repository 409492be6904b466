import type { BodySource } from '../upstream/call.js';
import type { Upstream } from '../upstream/client.js';
import { upstreamRequestHeaders, type UpstreamIdentity } from '../upstream/headers.js';
import type { BatchLookup } from './queue.js';

/** The upstream answered a watched batch call with more than `limitBytes` (file and batch objects are a few KB). */
export class AnswerTooLargeError extends Error {
  constructor(limitBytes: number) {
    super(`upstream answer larger than ${limitBytes} bytes`);
  }
}

/** Read a (small) upstream answer whole. Rejects when the body fails or outgrows `limitBytes`. */
export function readAnswer(body: BodySource, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.consume({
      data(chunk) {
        size += chunk.length;
        if (size > limitBytes) {
          body.destroy(new AnswerTooLargeError(limitBytes));
          return;
        }
        chunks.push(chunk);
      },
      end: () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
      error: reject,
    });
  });
}

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
