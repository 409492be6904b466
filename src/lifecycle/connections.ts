import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Tracks which client connections are serving a request, so a drain can close the others at
 * once, including connections that were opened but never sent a request (Node does not count
 * those as idle, and they would hold shutdown until its deadline), and close each busy
 * connection as soon as its last response ends.
 */
export interface ConnectionTracker {
  /** Stop keeping connections alive: close idle ones now, busy ones when their response ends. */
  drain(): void;
}

export function trackConnections(server: Server): ConnectionTracker {
  const busy = new Map<Socket, number>();
  const all = new Set<Socket>();
  let draining = false;

  server.on('connection', (socket: Socket) => {
    all.add(socket);
    socket.once('close', () => {
      all.delete(socket);
      busy.delete(socket);
    });
  });
  server.on('request', (request, response) => {
    const socket = request.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    if (draining) response.shouldKeepAlive = false;
    response.once('close', () => {
      const left = (busy.get(socket) ?? 1) - 1;
      if (left > 0) busy.set(socket, left);
      else {
        busy.delete(socket);
        if (draining) socket.end();
      }
    });
  });

  return {
    drain() {
      draining = true;
      for (const socket of all) if (!busy.has(socket)) socket.end();
    },
  };
}
