// The fake upstream's realtime side: `GET /v1/realtime?model=…` over WebSocket, speaking OpenAI's
// GA event names (or the beta ones with `OpenAI-Beta: realtime=v1`). Deterministic usage:
//   text input tokens  = ceil(chars of text items and instructions / 4), summed over the conversation
//   audio input tokens = ceil(committed audio bytes / 800)
//   earlier responses' output tokens count as input of later ones (text or audio), as OpenAI's do
//   output: one token per text delta; 25 audio tokens per audio delta (+ one transcript token)
// Scripting: per connection by `next` (the upgrade's answer), per response by
// `response.metadata` fields (strings): fake_deltas, fake_delta_bytes, fake_delay_ms,
// fake_close_after (the upstream closes with 1011 after that many deltas), fake_error (an error
// event instead of a response), fake_cached_text, fake_cached_audio.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

export interface RealtimeRecord {
  /** Path and query as received. */
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  /** Client events as received, parsed, oldest first. */
  readonly events: Record<string, unknown>[];
  /** Every frame received (binary and unparseable ones too). */
  frames: number;
  /** Bytes of audio deltas sent so far. */
  sentAudioBytes: number;
  /** Set when the socket closed: the code it closed with. */
  closeCode: number | undefined;
  readonly closed: Promise<void>;
  readonly socket: WebSocket;
}

/** How the next upgrade is answered (one-shot). */
export type UpgradeScript = { readonly hang: true } | { readonly status: number; readonly body: unknown };

export interface FakeRealtime {
  readonly sessions: RealtimeRecord[];
  /** The path and query of every upgrade request received, answered or not. */
  readonly upgrades: string[];
  next: UpgradeScript | undefined;
}

interface Conversation {
  textInput: number;
  audioInput: number;
  audioBuffer: number;
  session: Record<string, unknown>;
  responses: number;
  busy: { cancelled: boolean } | undefined;
}

const text = (n: number): number => Math.ceil(n / 4);

function charsOf(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + charsOf(v), 0);
  if (value !== null && typeof value === 'object') {
    let n = 0;
    for (const [k, v] of Object.entries(value)) if (k === 'text' || k === 'content' || k === 'transcript') n += charsOf(v);
    return n;
  }
  return 0;
}

export function createFakeRealtime(apiKey: string | undefined): { fake: FakeRealtime; onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void; close(): void } {
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('realtime') ? 'realtime' : false) });
  const fake: FakeRealtime = { sessions: [], upgrades: [], next: undefined };
  let ids = 0;
  const id = (prefix: string): string => `${prefix}_fake${(++ids).toString(16).padStart(8, '0')}`;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '/';
    fake.upgrades.push(url);
    if (!url.startsWith('/v1/realtime')) return void socket.destroy();
    const script = fake.next;
    fake.next = undefined;
    if (script && 'hang' in script) return; // never answers; the socket stays open until closed
    if (script) return httpError(socket, script.status, script.body);
    if (apiKey !== undefined && req.headers.authorization !== `Bearer ${apiKey}`) {
      return httpError(socket, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveSession(ws, req, url));
  };

  const serveSession = (ws: WebSocket, req: IncomingMessage, url: string): void => {
    let closedResolve!: () => void;
    const rec: RealtimeRecord = { url, headers: req.headers, events: [], frames: 0, sentAudioBytes: 0, closeCode: undefined, closed: new Promise((r) => (closedResolve = r)), socket: ws };
    fake.sessions.push(rec);
    const beta = String(req.headers['openai-beta'] ?? '').includes('realtime=v1');
    const model = new URL(url, 'http://x').searchParams.get('model') ?? 'gpt-realtime';
    const conv: Conversation = { textInput: 0, audioInput: 0, audioBuffer: 0, session: { id: id('sess'), object: 'realtime.session', type: 'realtime', model, output_modalities: ['text'], instructions: '' }, responses: 0, busy: undefined };
    const send = (event: Record<string, unknown>): Promise<void> =>
      new Promise((resolve) => {
        if (ws.readyState !== ws.OPEN) return resolve();
        // Waiting for each write: a reader that stops reading stalls the fake, as it would OpenAI.
        ws.send(JSON.stringify({ event_id: id('event'), ...event }), () => resolve());
      });
    ws.on('close', (code) => {
      rec.closeCode = code;
      if (conv.busy) conv.busy.cancelled = true;
      closedResolve();
    });
    ws.on('error', () => undefined);
    void send({ type: 'session.created', session: conv.session });
    ws.on('message', (data: RawData, isBinary) => {
      rec.frames++;
      if (isBinary) return void send({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_event', message: 'Binary frames are not supported.', param: null, event_id: null } });
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(rawText(data)) as Record<string, unknown>;
      } catch {
        return void send({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_json', message: 'Invalid JSON.', param: null, event_id: null } });
      }
      rec.events.push(event);
      void onEvent(event, conv, send, beta, ws, rec, id);
    });
  };

  return {
    fake,
    onUpgrade,
    close: () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
    },
  };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}

function httpError(socket: Duplex, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  socket.end(`HTTP/1.1 ${status} Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`);
}

type Send = (event: Record<string, unknown>) => Promise<void>;

async function onEvent(event: Record<string, unknown>, conv: Conversation, send: Send, beta: boolean, ws: WebSocket, rec: RealtimeRecord, id: (p: string) => string): Promise<void> {
  const clientEventId = typeof event.event_id === 'string' ? event.event_id : null;
  switch (event.type) {
    case 'session.update': {
      const session = (event.session ?? {}) as Record<string, unknown>;
      if (typeof session.instructions === 'string') conv.textInput += session.instructions.length;
      Object.assign(conv.session, session);
      return send({ type: 'session.updated', session: conv.session });
    }
    case 'conversation.item.create': {
      const item: Record<string, unknown> = { id: id('item'), ...((event.item ?? {}) as Record<string, unknown>) };
      conv.textInput += charsOf(item.content);
      if (beta) return send({ type: 'conversation.item.created', previous_item_id: null, item });
      await send({ type: 'conversation.item.added', previous_item_id: null, item });
      return send({ type: 'conversation.item.done', previous_item_id: null, item });
    }
    case 'input_audio_buffer.append':
      conv.audioBuffer += typeof event.audio === 'string' ? Buffer.from(event.audio, 'base64').length : 0;
      return;
    case 'input_audio_buffer.commit': {
      const itemId = id('item');
      conv.audioInput += Math.ceil(conv.audioBuffer / 800);
      conv.audioBuffer = 0;
      await send({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: itemId });
      return send({ type: beta ? 'conversation.item.created' : 'conversation.item.added', item: { id: itemId, type: 'message', role: 'user', content: [{ type: 'input_audio' }] } });
    }
    case 'response.cancel':
      if (conv.busy) conv.busy.cancelled = true;
      return;
    case 'response.create':
      return respond(event, conv, send, beta, ws, rec, id);
    default:
      return send({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: `Invalid value: '${String(event.type)}'.`, param: 'type', event_id: clientEventId } });
  }
}

function metaInt(meta: Record<string, unknown>, name: string, fallback: number): number {
  const raw = meta[name];
  const n = typeof raw === 'string' ? Number.parseInt(raw, 10) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

async function respond(event: Record<string, unknown>, conv: Conversation, send: Send, beta: boolean, ws: WebSocket, rec: RealtimeRecord, id: (p: string) => string): Promise<void> {
  const options = (event.response ?? {}) as Record<string, unknown>;
  const meta = (options.metadata ?? {}) as Record<string, unknown>;
  if (typeof meta.fake_error === 'string') {
    return send({ type: 'error', error: { type: 'invalid_request_error', code: meta.fake_error, message: `Fake error ${meta.fake_error}`, param: null, event_id: typeof event.event_id === 'string' ? event.event_id : null } });
  }
  const modalities = (options.output_modalities ?? options.modalities ?? conv.session.output_modalities ?? conv.session.modalities ?? ['text']) as string[];
  const audio = modalities.includes('audio');
  const deltas = metaInt(meta, 'fake_deltas', 3);
  const deltaBytes = metaInt(meta, 'fake_delta_bytes', 480);
  const delayMs = metaInt(meta, 'fake_delay_ms', 0);
  const closeAfter = metaInt(meta, 'fake_close_after', -1);
  const responseId = id('resp');
  const busy = { cancelled: false };
  conv.busy = busy;
  const base = { id: responseId, object: 'realtime.response', status: 'in_progress', output: [], metadata: options.metadata ?? null };
  await send({ type: 'response.created', response: base });
  const itemId = id('item');
  let sent = 0;
  for (; sent < deltas && !busy.cancelled; sent++) {
    if (sent === closeAfter) {
      ws.close(1011, 'fake upstream failure');
      return;
    }
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (audio) {
      const chunk = Buffer.alloc(deltaBytes, sent % 251).toString('base64');
      rec.sentAudioBytes += deltaBytes;
      await send({ type: beta ? 'response.audio.delta' : 'response.output_audio.delta', response_id: responseId, item_id: itemId, output_index: 0, content_index: 0, delta: chunk });
      await send({ type: beta ? 'response.audio_transcript.delta' : 'response.output_audio_transcript.delta', response_id: responseId, item_id: itemId, output_index: 0, content_index: 0, delta: 'hé ' });
    } else {
      await send({ type: beta ? 'response.text.delta' : 'response.output_text.delta', response_id: responseId, item_id: itemId, output_index: 0, content_index: 0, delta: 'wörld ' });
    }
  }
  conv.busy = undefined;
  const cachedText = Math.min(metaInt(meta, 'fake_cached_text', 0), text(conv.textInput));
  const cachedAudio = Math.min(metaInt(meta, 'fake_cached_audio', 0), conv.audioInput);
  const inText = text(conv.textInput);
  const outText = audio ? sent : sent;
  const outAudio = audio ? sent * 25 : 0;
  const usage = {
    total_tokens: inText + conv.audioInput + outText + outAudio,
    input_tokens: inText + conv.audioInput,
    output_tokens: outText + outAudio,
    input_token_details: {
      text_tokens: inText,
      audio_tokens: conv.audioInput,
      image_tokens: 0,
      cached_tokens: cachedText + cachedAudio,
      cached_tokens_details: { text_tokens: cachedText, audio_tokens: cachedAudio, image_tokens: 0 },
    },
    output_token_details: { text_tokens: outText, audio_tokens: outAudio },
  };
  // What this response said is input of the next one (transcript text and audio).
  conv.textInput += outText * 4;
  conv.audioInput += outAudio;
  conv.responses++;
  await send({ type: 'response.done', response: { ...base, status: busy.cancelled ? 'cancelled' : 'completed', usage } });
  await send({ type: 'rate_limits.updated', rate_limits: [{ name: 'requests', limit: 99999, remaining: 99998, reset_seconds: 0.01 }, { name: 'tokens', limit: 9999999, remaining: 9999000, reset_seconds: 0.01 }] });
}
