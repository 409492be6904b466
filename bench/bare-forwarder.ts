/**
 * Bare forwarder: the baseline a gateway is compared against. fastify 5 +
 * undici 7 Pool and nothing else — no auth, no parsing, no logging.
 *
 *   PORT=4020 UPSTREAM_URL=http://127.0.0.1:4010/v1 tsx bench/bare-forwarder.ts
 *
 * Any method on /v1/* is forwarded to UPSTREAM_URL + the rest of the path
 * (/v1/x?q -> UPSTREAM_URL/x?q) with the request headers minus hop-by-hop
 * headers and host, and the raw body bytes. The upstream status, headers
 * (minus hop-by-hop) and body stream are piped back.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { Pool } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);

function stripHopByHop(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  alsoDrop: readonly string[] = [],
): Record<string, string | string[]> {
  const drop = new Set(alsoDrop);
  const conn = headers['connection'];
  if (conn !== undefined) {
    for (const name of (Array.isArray(conn) ? conn.join(',') : conn).split(',')) {
      const n = name.trim().toLowerCase();
      if (n) drop.add(n);
    }
  }
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n) || drop.has(n)) continue;
    out[n] = value;
  }
  return out;
}

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const upstreamUrl = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:4010/v1');
const upstreamBase = upstreamUrl.pathname.replace(/\/+$/, '');

const pool = new Pool(upstreamUrl.origin, { pipelining: 1, keepAliveTimeout: 30_000 });

const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });

app.removeAllContentTypeParsers();
const rawBuffer = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void): void => {
  done(null, body);
};
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, rawBuffer);
app.addContentTypeParser('*', { parseAs: 'buffer' }, rawBuffer);

app.all('/v1/*', async (req: FastifyRequest, reply: FastifyReply) => {
  const path = upstreamBase + req.url.slice('/v1'.length);
  const body = Buffer.isBuffer(req.body) ? req.body : undefined;
  // `expect` is rejected by undici; host is set from the upstream origin.
  const headers = stripHopByHop(req.headers, ['host', 'expect']);
  try {
    const res = await pool.request({
      method: req.method as 'GET',
      path,
      headers,
      body,
    });
    reply.code(res.statusCode);
    reply.headers(stripHopByHop(res.headers));
    return reply.send(res.body);
  } catch (err) {
    return reply.code(502).send({ error: { message: `upstream error: ${(err as Error).message}` } });
  }
});

const shutdown = (): void => {
  void app.close().finally(() => {
    void pool.close().finally(() => process.exit(0));
  });
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await app.listen({ port, host });
const addr = app.server.address();
const boundPort = addr !== null && typeof addr === 'object' ? addr.port : port;
console.log(`bare-forwarder listening on http://${host}:${boundPort}`);
