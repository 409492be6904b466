// The fake OpenAI upstream server: request intake, recording, scripting and routing.
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as assistants from './assistants.js';
import { chatCompletions, completions } from './chat.js';
import {
  type Ctx,
  type FakeState,
  type RecordedRequest,
  baseHeaders,
  newState,
  notFound,
  readKnobs,
  sendError,
  sendJson,
  shortHash,
} from './common.js';
import * as files from './files.js';
import * as media from './media.js';
import * as responses from './responses.js';
import { createFakeRealtime, type FakeRealtime } from './realtime.js';

export interface FakeUpstream {
  /** Base URL to give an OpenAI client, e.g. http://127.0.0.1:41234/v1 */
  url: string;
  /** e.g. http://127.0.0.1:41234 */
  origin: string;
  port: number;
  /** Recorded exchanges, oldest first (empty when `record: false`). */
  requests: RecordedRequest[];
  /** The realtime WebSocket side: its sessions, and the next upgrade's script. */
  realtime: FakeRealtime;
  /** Clears `requests` (the in-memory files/batches/assistants state is kept). */
  reset(): void;
  /** Closes the server and destroys open sockets. */
  close(): Promise<void>;
  /** Scripts the next requests, one step each, in order (then the usual behaviour resumes). */
  script(...steps: FakeStep[]): void;
  /** A step applied to every request while set (after the scripted ones): e.g. a 503 outage; undefined ends it. */
  always(step: FakeStep | undefined): void;
  /** Entries `GET /models` lists besides (or instead of, by id) the usual ones; undefined: the usual list. */
  models(entries: Record<string, unknown>[] | undefined): void;
}

/**
 * What one request meets, besides its x-fake-* headers: an error status (with extra headers,
 * e.g. retry-after-ms), a connection reset before any answer, a hang (no answer at all), a cut
 * after n events or half the body, or extra headers on a normal answer (x-ratelimit-*).
 */
export interface FakeStep {
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly reset?: boolean;
  readonly hang?: boolean;
  readonly cutAfter?: number;
  /** A JSON body answered as is, with `status` (default 200): e.g. a 429 naming its limit. */
  readonly json?: unknown;
  /** With `json`: the head and half the body are sent, then nothing until the client leaves. */
  readonly stall?: boolean;
  /** As `always`: only requests to this path (e.g. `/v1/models`) meet it. */
  readonly only?: string;
}

export interface FakeUpstreamOptions {
  port?: number;
  host?: string;
  /** If set, requests whose Authorization is not `Bearer ${apiKey}` get OpenAI's 401 invalid_api_key body. */
  apiKey?: string;
  /** Record requests in `requests` (default true; the benchmark passes false). */
  record?: boolean;
}

type Handler = (ctx: Ctx) => void | Promise<void>;
interface Route {
  method: string;
  parts: string[];
  handler: Handler;
  beta: boolean;
}

const ROUTES: Route[] = [];
function route(spec: string, handler: Handler, beta = false): void {
  const [method, path] = spec.split(' ') as [string, string];
  ROUTES.push({ method, parts: path.split('/').filter(Boolean), handler, beta });
}

route('POST /chat/completions', chatCompletions);
route('POST /responses', responses.createResponse);
route('POST /completions', completions);
route('POST /embeddings', media.embeddings);
route('GET /responses/:id', responses.getResponse);
route('DELETE /responses/:id', responses.deleteResponse);
route('GET /responses/:id/input_items', responses.responseInputItems);
route('POST /moderations', media.moderations);
route('POST /images/generations', media.imageGenerations);
route('POST /images/edits', media.imageEdits);
route('POST /audio/speech', media.speech);
route('POST /audio/transcriptions', (ctx) => media.transcribe(ctx, 'transcriptions'));
route('POST /audio/translations', (ctx) => media.transcribe(ctx, 'translations'));
route('POST /videos', media.createVideo);
route('POST /containers', media.createContainer);
route('GET /models', media.listModels);
route('GET /models/:id', media.getModel);
route('POST /files', files.uploadFile);
route('GET /files', files.listFiles);
route('GET /files/:id', files.getFile);
route('DELETE /files/:id', files.deleteFile);
route('GET /files/:id/content', files.fileContent);
route('POST /batches', files.createBatch);
route('GET /batches', files.listBatches);
route('GET /batches/:id', files.getBatch);
route('POST /batches/:id/cancel', files.cancelBatch);
route('POST /__fake/batches/:id/status', files.setBatchStatus);
route('POST /fine_tuning/jobs', files.createFtJob);
route('GET /fine_tuning/jobs', files.listFtJobs);
route('GET /fine_tuning/jobs/:id', files.getFtJob);
route('POST /fine_tuning/jobs/:id/cancel', files.cancelFtJob);
route('GET /fine_tuning/jobs/:id/events', files.ftJobEvents);
route('POST /assistants', assistants.createAssistant, true);
route('GET /assistants', assistants.listAssistants, true);
route('GET /assistants/:id', assistants.getAssistant, true);
route('POST /assistants/:id', assistants.updateAssistant, true);
route('DELETE /assistants/:id', assistants.deleteAssistant, true);
route('POST /threads', assistants.createThread, true);
route('GET /threads/:id', assistants.getThread, true);
route('POST /threads/:id', assistants.updateThread, true);
route('DELETE /threads/:id', assistants.deleteThread, true);
route('POST /threads/:id/messages', assistants.createMessage, true);
route('GET /threads/:id/messages', assistants.listMessages, true);
route('POST /threads/:id/runs', assistants.createRun, true);
route('GET /threads/:id/runs/:run_id', assistants.getRun, true);
// Realtime SIP call control: 200 with an empty body, as OpenAI answers.
route('POST /realtime/calls/:id/hangup', media.callControl);
route('POST /realtime/calls/:id/refer', media.callControl);
route('POST /realtime/calls/:id/reject', media.callControl);

/** Finds the route for `pathname` (which must start with /v1/); fills `params`. */
function match(method: string, pathname: string, params: Record<string, string>): Route | undefined {
  if (!pathname.startsWith('/v1/')) return undefined;
  const segs = pathname.slice(4).split('/');
  if (segs[segs.length - 1] === '') segs.pop();
  for (const r of ROUTES) {
    if (r.method !== method || r.parts.length !== segs.length) continue;
    let ok = true;
    for (let i = 0; i < segs.length && ok; i++) {
      const p = r.parts[i]!;
      if (p.charCodeAt(0) !== 58 /* ':' */) ok = p === segs[i];
    }
    if (!ok) continue;
    for (let i = 0; i < segs.length; i++) {
      const p = r.parts[i]!;
      if (p.charCodeAt(0) === 58) {
        try {
          params[p.slice(1)] = decodeURIComponent(segs[i]!);
        } catch {
          params[p.slice(1)] = segs[i]!;
        }
      }
    }
    return r;
  }
  return undefined;
}

function maskKey(key: string): string {
  return key.length <= 8 ? '*'.repeat(key.length) : `${key.slice(0, 3)}${'*'.repeat(key.length - 7)}${key.slice(-4)}`;
}

function checkAuth(ctx: Ctx, apiKey: string): boolean {
  const auth = ctx.req.headers.authorization;
  // Azure OpenAI's header.
  if (auth === `Bearer ${apiKey}` || ctx.req.headers['api-key'] === apiKey) return true;
  const given = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  const message = given
    ? `Incorrect API key provided: ${maskKey(given)}. You can find your API key at https://platform.openai.com/account/api-keys.`
    : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (i.e. username: YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.";
  sendError(ctx, 401, message, { code: 'invalid_api_key' });
  return false;
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
    req.on('aborted', () => resolve(undefined));
  });
}

/** Azure OpenAI's path shapes onto OpenAI's: /openai/v1/x and /openai/deployments/{name}/x are /v1/x. */
function azurePath(pathname: string): string {
  if (pathname.startsWith('/openai/v1/')) return pathname.slice('/openai'.length);
  const deployment = /^\/openai\/deployments\/[^/]+(\/.*)$/.exec(pathname);
  return deployment ? `/v1${deployment[1] ?? ''}` : pathname;
}

async function serve(ctx: Ctx, apiKey: string | undefined, step: FakeStep | undefined): Promise<void> {
  const { knobs } = ctx;
  if (step?.reset) return void ctx.req.socket.destroy();
  if (step?.hang) return void (await new Promise<void>((resolve) => ctx.res.once('close', resolve)));
  if (step?.cutAfter !== undefined) knobs.cutAfter = step.cutAfter;
  ctx.extraHeaders = step?.headers;
  if (knobs.latencyMs > 0 && !(await ctx.sleep(knobs.latencyMs))) return;
  if (apiKey !== undefined && !checkAuth(ctx, apiKey)) return;
  const status = step?.status ?? knobs.status;
  if (step?.json !== undefined && step.stall) {
    const bytes = Buffer.from(JSON.stringify(step.json));
    ctx.res.writeHead(status ?? 200, { ...baseHeaders(ctx), 'content-type': 'application/json', 'content-length': bytes.length });
    ctx.res.write(bytes.subarray(0, bytes.length >> 1));
    return void (await new Promise<void>((resolve) => ctx.res.once('close', resolve)));
  }
  if (step?.json !== undefined) return sendJson(ctx, status ?? 200, step.json);
  if (status !== undefined && status >= 400 && status <= 599) {
    sendError(ctx, status, `Fake upstream error ${status}`, {
      code: status === 429 ? 'rate_limit_exceeded' : null,
      headers: status === 429 && !step?.headers ? { 'retry-after': '1' } : undefined,
    });
    return;
  }
  const r = match(ctx.method, ctx.pathname, ctx.params);
  if (!r) return notFound(ctx);
  if (r.beta && !assistants.checkBeta(ctx)) return;
  await r.handler(ctx);
}

/**
 * The body ids are derived from, without `stream_options`: whether a stream reports usage must not
 * change its ids (a gateway may ask for usage on the client's behalf; OpenAI's ids are random).
 */
function idSeed(body: Buffer): Buffer | string {
  if (!body.includes('"stream_options"')) return body;
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return body;
    const { stream_options: _ignored, ...rest } = parsed as Record<string, unknown>;
    return JSON.stringify(rest);
  } catch {
    return body;
  }
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const host = options.host ?? '127.0.0.1';
  const record = options.record !== false;
  const apiKey = options.apiKey;
  const requests: RecordedRequest[] = [];
  const state: FakeState = newState();
  const sockets = new Set<Socket>();
  const idPrefix = randomBytes(4).toString('hex');
  const steps: FakeStep[] = [];
  let always: FakeStep | undefined;
  let counter = 0;

  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const startedAt = Date.now();
    let resolveFinished!: () => void;
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let hash: string | undefined;
    let cutFlag = false;
    const ctx: Ctx = {
      req,
      res,
      method,
      pathname: azurePath(q === -1 ? url : url.slice(0, q)),
      body: Buffer.alloc(0),
      knobs: readKnobs(req.headers),
      state,
      params: {},
      rec: undefined,
      requestId: `req_${idPrefix}${(++counter).toString(16).padStart(24, '0')}`,
      startedAt,
      closed: false,
      get hash() {
        return (hash ??= shortHash(method, ' ', url, '\n', idSeed(ctx.body)));
      },
      sleep: (ms) =>
        new Promise<boolean>((resolve) => {
          if (ctx.closed) return resolve(false);
          const onClose = () => {
            clearTimeout(timer);
            resolve(false);
          };
          const timer = setTimeout(() => {
            res.off('close', onClose);
            resolve(!ctx.closed);
          }, ms);
          res.once('close', onClose);
        }),
      cut: async () => {
        if (ctx.rec) ctx.rec.cut = true;
        cutFlag = true;
        const socket = res.socket;
        if (!socket || socket.destroyed) return;
        // let what was written reach the kernel, then drop the connection without a terminating chunk
        await new Promise<void>((resolve) => {
          socket.once('close', resolve);
          socket.write('', () => resolve());
        });
        socket.destroy();
      },
    };
    if (record) {
      ctx.rec = {
        method,
        path: url,
        headers: req.headers,
        body: ctx.body,
        aborted: false,
        cut: false,
        finished: new Promise<void>((r) => (resolveFinished = r)),
      };
      requests.push(ctx.rec);
    }
    res.once('close', () => {
      ctx.closed = true;
      if (ctx.rec) {
        if (!res.writableFinished && !cutFlag) ctx.rec.aborted = true;
        resolveFinished();
      }
    });

    const step = steps.shift() ?? (always?.only === undefined || always.only === ctx.pathname ? always : undefined);
    const body = await readBody(req);
    if (body === undefined) return; // client went away mid-body; 'close' records it
    ctx.body = body;
    if (ctx.rec) ctx.rec.body = body;
    try {
      await serve(ctx, apiKey, step);
    } catch (err) {
      if (!res.headersSent && !ctx.closed) {
        sendError(ctx, 500, `Fake upstream internal error: ${(err as Error).message}`);
      } else {
        res.destroy();
      }
    }
  };

  const server: Server = createServer((req, res) => void onRequest(req, res));
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const realtime = createFakeRealtime(apiKey);
  server.on('upgrade', realtime.onUpgrade);
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port ?? 0, host, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const origin = `http://${hostForUrl}:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    port,
    requests,
    realtime: realtime.fake,
    reset() {
      requests.length = 0;
      steps.length = 0;
      always = undefined;
    },
    script(...next) {
      steps.push(...next);
    },
    always(step) {
      always = step;
    },
    models(entries) {
      state.models = entries;
    },
    close() {
      return new Promise<void>((resolve) => {
        realtime.close();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      });
    },
  };
}
