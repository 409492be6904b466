// Low-level HTTP helpers for tests that need control global fetch does not give:
// arbitrary (hop-by-hop) request headers, chunked bodies, partial reads.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RawRequestOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  /** One buffer (sent with content-length unless headers say otherwise) or pieces sent chunked. */
  body?: Buffer | string | Buffer[];
  /** Pause between the pieces of a chunked body (lets each piece travel on its own). */
  pieceDelayMs?: number;
}

/** Send one request with node:http (no header filtering) and read the whole answer. */
export function rawRequest(url: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const { body } = options;
    if (Array.isArray(body)) {
      const delay = options.pieceDelayMs ?? 0;
      void (async () => {
        for (const piece of body) {
          if (req.destroyed) return;
          req.write(piece);
          if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        }
        if (!req.destroyed) req.end();
      })();
    } else {
      req.end(body);
    }
  });
}

/** Read a fetch body as text until it ends or fails; returns what arrived and the failure, if any. */
export async function readText(res: Response): Promise<{ text: string; reads: number; error: unknown }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let reads = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      reads++;
      text += decoder.decode(value, { stream: true });
    }
    text += decoder.decode();
    return { text, reads, error: undefined };
  } catch (error) {
    return { text, reads, error };
  }
}

/** A TCP port that was free a moment ago (nothing listens on it now). */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
