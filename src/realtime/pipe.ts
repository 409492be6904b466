import type { WebSocket } from 'ws';
import type { Direction, RealtimeMetrics } from './metrics.js';

/**
 * The transport between the two sockets of a session: frames in order, backpressure (a side with
 * more than `highWater` bytes waiting to be sent pauses the reading of the other side until it is
 * down to half), heartbeats, and close codes passed on. What the frames mean is session.ts's.
 */
export interface Pipe {
  /** Send to the client, pausing the upstream's reading while the client is behind. */
  toClient(data: Buffer | string, binary: boolean): void;
  toUpstream(data: Buffer | string, binary: boolean): void;
  /** Pause / resume reading the client (the session's own queue is full / drained). */
  holdClient(hold: boolean): void;
  /** Close both sides: the client with this code and reason, the upstream with a normal close. */
  closeBoth(code: number, reason: string): void;
}

export interface PipeOptions {
  readonly highWater: number;
  readonly pingIntervalMs: number;
  readonly metrics: RealtimeMetrics;
  /** Both sockets are closed: which side closed first, and with what. */
  readonly onEnd: (end: { by: 'client' | 'upstream' | 'gateway'; code: number; reason: string }) => void;
}

/** Close codes a peer may send (RFC 6455 §7.4: 1005, 1006 and 1015 are never sent on the wire). */
function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export function createPipe(client: WebSocket, upstream: WebSocket, options: PipeOptions): Pipe {
  const { highWater, metrics } = options;
  const low = Math.floor(highWater / 2);
  // Paused because the other side is behind (per reader), or by the session's own queue.
  let upstreamPaused = false;
  let clientPaused = false;
  let clientHeld = false;
  let first: { by: 'client' | 'upstream' | 'gateway'; code: number; reason: string } | undefined;
  let closedSides = 0;

  const setClientReading = (): void => {
    const pause = clientPaused || clientHeld;
    if (pause) client.pause();
    else client.resume();
  };
  const send = (to: WebSocket, data: Buffer | string, binary: boolean, direction: Direction): void => {
    if (to.readyState !== to.OPEN) return;
    metrics.relayed(direction, typeof data === 'string' ? Buffer.byteLength(data) : data.length);
    const toClient = to === client;
    to.send(data, { binary }, () => {
      // A write reached the socket: resume the reader once the backlog is down to half.
      if (to.bufferedAmount > low) return;
      if (toClient && upstreamPaused) {
        upstreamPaused = false;
        upstream.resume();
      } else if (!toClient && clientPaused) {
        clientPaused = false;
        setClientReading();
      }
    });
    if (to.bufferedAmount <= highWater) return;
    if (toClient && !upstreamPaused) {
      upstreamPaused = true;
      upstream.pause();
      metrics.paused(direction);
    } else if (!toClient && !clientPaused) {
      clientPaused = true;
      setClientReading();
      metrics.paused(direction);
    }
  };

  const heartbeat = options.pingIntervalMs > 0 ? startHeartbeat([client, upstream], options.pingIntervalMs) : undefined;
  const closed = (): void => {
    closedSides++;
    if (closedSides < 2) return;
    if (heartbeat) clearInterval(heartbeat);
    options.onEnd(first ?? { by: 'gateway', code: 1006, reason: '' });
  };
  client.once('close', (code, reason) => {
    first ??= { by: 'client', code, reason: reason.toString() };
    // A client that left without a close frame (1006) or without a code (1005): the upstream is told it went away.
    if (upstream.readyState === upstream.OPEN) upstream.close(sendable(code) ? code : 1001, sendable(code) ? reason : Buffer.from('client gone'));
    else upstream.terminate();
    closed();
  });
  upstream.once('close', (code, reason) => {
    first ??= { by: 'upstream', code, reason: reason.toString() };
    if (client.readyState === client.OPEN) {
      // An upstream lost without a close frame is the gateway's failure to report: 1011 with a reason.
      if (sendable(code)) client.close(code, reason);
      else client.close(1011, 'upstream connection lost');
    } else client.terminate();
    closed();
  });
  // Errors end in 'close'; without listeners they would throw.
  client.on('error', () => undefined);
  upstream.on('error', () => undefined);

  return {
    toClient: (data, binary) => send(client, data, binary, 'upstream_to_client'),
    toUpstream: (data, binary) => send(upstream, data, binary, 'client_to_upstream'),
    holdClient(hold) {
      clientHeld = hold;
      setClientReading();
    },
    closeBoth(code, reason) {
      first ??= { by: 'gateway', code, reason };
      if (client.readyState === client.OPEN) client.close(code, reason);
      if (upstream.readyState === upstream.OPEN) upstream.close(1000, 'client session ended');
    },
  };
}

/** Ping each socket every interval; one that has not answered the previous ping is dropped. */
function startHeartbeat(sockets: readonly WebSocket[], intervalMs: number): NodeJS.Timeout {
  const alive = new Map<WebSocket, boolean>();
  for (const socket of sockets) {
    alive.set(socket, true);
    socket.on('pong', () => alive.set(socket, true));
  }
  const timer = setInterval(() => {
    for (const socket of sockets) {
      if (socket.readyState !== socket.OPEN) continue;
      if (!alive.get(socket)) {
        socket.terminate();
        continue;
      }
      alive.set(socket, false);
      socket.ping();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
