/**
 * The realtime benchmark's upstream: `/v1/realtime` over WebSocket that answers `session.created`
 * and counts what it receives, and nothing else (so it takes little of the machine's CPU).
 *
 *   PORT=4030 tsx bench/realtime-sink.ts     # GET /count → {"frames": n, "bytes": n}
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 4030);
let frames = 0;
let bytes = 0;
const server = createServer((req, res) => {
  if (req.url === '/count') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ frames, bytes }));
  } else res.writeHead(404).end();
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
server.on('upgrade', (req, socket, head) => {
  if (!req.url?.startsWith('/v1/realtime')) return void socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(JSON.stringify({ type: 'session.created', event_id: 'event_sink', session: { id: 'sess_sink', object: 'realtime.session', type: 'realtime' } }));
    ws.on('message', (data: Buffer) => {
      frames++;
      bytes += data.length;
    });
    ws.on('error', () => undefined);
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`realtime-sink listening on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
