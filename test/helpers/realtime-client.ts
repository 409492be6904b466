// A raw `ws` realtime client for tests: collects server events and waits for the ones asked for.
import WebSocket, { type ClientOptions } from 'ws';

export interface RawRealtime {
  readonly ws: WebSocket;
  readonly events: Record<string, unknown>[];
  /** The first event (from `from` on) of this type; rejects if the socket closes first. */
  next(type: string, from?: number): Promise<Record<string, unknown>>;
  send(event: Record<string, unknown>): void;
  /** Settles with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
}

export function openRealtime(url: string, protocols: string[] | undefined, options: ClientOptions = {}): Promise<RawRealtime> {
  const ws = new WebSocket(url, protocols, options);
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let closedInfo: { code: number; reason: string } | undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => {
      closedInfo = { code, reason: reason.toString() };
      resolve(closedInfo);
      for (const w of waiters) w();
    }),
  );
  ws.on('message', (data) => {
    events.push(JSON.parse(String(data)) as Record<string, unknown>);
    for (const w of waiters) w();
  });
  const next = (type: string, from = 0): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = events.slice(from).find((e) => e.type === type);
        if (found) {
          waiters.delete(check);
          resolve(found);
        } else if (closedInfo) {
          waiters.delete(check);
          reject(new Error(`closed (${closedInfo.code} ${closedInfo.reason}) before ${type}`));
        }
      };
      waiters.add(check);
      check();
    });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, events, next, send: (e) => ws.send(JSON.stringify(e)), closed }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })));
    });
    ws.once('error', reject);
  });
}
