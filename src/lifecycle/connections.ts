import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Tracks which client connections are serving a request, so a drain can close the others at
 * once, including connections that were opened but never sent a request (Node does not count
 * those as idle, and they would hold shutdown until its deadline), and close each busy
 * connection as soon as its last response ends. The app reports request start and end from the
 * hooks it already runs, so tracking adds no listener per request.
 */
export interface ConnectionTracker {
  requestStarted(socket: Socket): void;
  /** Returns true when the connection was closed because the gateway is draining. */
  requestEnded(socket: Socket): void;
  /** Stop keeping connections alive: close idle ones now, busy ones when their response ends. */
  drain(): void;
  /** A connection taken over by an upgrade (realtime's WebSocket): its owner ends it, not the drain. */
  forget(socket: Socket): void;
  readonly draining: boolean;
}

export function trackConnections(server: Server): ConnectionTracker {
  /** Open connections and how many requests each is serving right now. */
  const active = new Map<Socket, number>();
  let draining = false;

  server.on('connection', (socket: Socket) => {
    active.set(socket, 0);
    socket.once('close', () => active.delete(socket));
  });

  return {
    get draining() {
      return draining;
    },
    requestStarted(socket) {
      active.set(socket, (active.get(socket) ?? 0) + 1);
    },
    requestEnded(socket) {
      const left = (active.get(socket) ?? 1) - 1;
      if (active.has(socket)) active.set(socket, left);
      if (draining && left <= 0) socket.end();
    },
    forget(socket) {
      active.delete(socket);
    },
    drain() {
      draining = true;
      for (const [socket, requests] of active) if (requests === 0) socket.end();
    },
  };
}
