/**
 * The bare WebSocket relay the realtime benchmark compares tollgate against: `ws` on both sides,
 * each client connection dialled through to UPSTREAM_URL's `/realtime` with the same query, frames
 * relayed as they come. No authentication, parsing, admission, backpressure or metrics.
 *
 *   PORT=4031 UPSTREAM_URL=http://127.0.0.1:4030/v1 tsx bench/realtime-bare.ts
 */
import { createServer } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 4031);
const upstreamBase = (process.env.UPSTREAM_URL ?? 'http://127.0.0.1:4030/v1').replace(/^http/, 'ws').replace(/\/+$/, '');
const server = createServer((_req, res) => res.writeHead(200).end('ok'));
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
server.on('upgrade', (req, socket, head) => {
  const query = req.url?.slice(req.url.indexOf('?')) ?? '';
  const upstream = new WebSocket(`${upstreamBase}/realtime${query}`, { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  upstream.once('error', () => socket.destroy());
  upstream.once('open', () => {
    upstream.pause();
    wss.handleUpgrade(req, socket, head, (client) => {
      client.on('message', (data, binary) => upstream.send(data, { binary }));
      upstream.on('message', (data, binary) => client.send(data, { binary }));
      client.once('close', () => upstream.close());
      upstream.once('close', () => client.close());
      client.on('error', () => undefined);
      upstream.resume();
    });
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`realtime-bare listening on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
