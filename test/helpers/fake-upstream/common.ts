// Shared plumbing of the fake OpenAI upstream: per-request context, scripting
// knobs, deterministic content, and the JSON / SSE writers.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

export interface RecordedRequest {
  method: string;
  /** As received, including /v1 and the query string. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Full request body as received. */
  body: Buffer;
  /** True if the client closed the connection before the response finished. */
  aborted: boolean;
  /** True if the fake itself cut the connection (x-fake-cut-after); then `aborted` stays false. */
  cut: boolean;
  /** Settles when the exchange is over (response finished or connection gone). */
  finished: Promise<void>;
}

/** Fixed `created` / `created_at` timestamp of every generated object. */
export const CREATED = 1750000000;

/** Scripting knobs read from `x-fake-*` request headers. */
export interface Knobs {
  status: number | undefined;
  latencyMs: number;
  chunks: number;
  chunkDelayMs: number;
  cutAfter: number | undefined;
  promptTokens: number | undefined;
  cachedTokens: number;
  /** Responses: built-in tool call items put before the message (x-fake-web-search-calls, x-fake-file-search-calls). */
  webSearchCalls: number;
  fileSearchCalls: number;
  /** JSON answers indented as OpenAI's own are (x-fake-pretty: 1). */
  pretty: boolean;
}

function intHeader(headers: IncomingHttpHeaders, name: string): number | undefined {
  const raw = headers[name];
  if (raw === undefined) return undefined;
  const n = Number.parseInt(Array.isArray(raw) ? (raw[0] ?? '') : raw, 10);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

export function readKnobs(headers: IncomingHttpHeaders): Knobs {
  return {
    status: intHeader(headers, 'x-fake-status'),
    latencyMs: intHeader(headers, 'x-fake-latency-ms') ?? 0,
    chunks: intHeader(headers, 'x-fake-chunks') ?? 5,
    chunkDelayMs: intHeader(headers, 'x-fake-chunk-delay-ms') ?? 0,
    cutAfter: intHeader(headers, 'x-fake-cut-after'),
    promptTokens: intHeader(headers, 'x-fake-prompt-tokens'),
    cachedTokens: intHeader(headers, 'x-fake-cached-tokens') ?? 0,
    webSearchCalls: intHeader(headers, 'x-fake-web-search-calls') ?? 0,
    fileSearchCalls: intHeader(headers, 'x-fake-file-search-calls') ?? 0,
    pretty: intHeader(headers, 'x-fake-pretty') === 1,
  };
}

export type Json = Record<string, unknown>;

/** In-memory state of the stateful endpoints (files, batches, fine-tuning, assistants). */
export interface FakeState {
  files: Map<string, { meta: Json; content: Buffer }>;
  batches: Map<string, Json>;
  ftJobs: Map<string, Json>;
  assistants: Map<string, Json>;
  threads: Map<string, { thread: Json; messages: Json[]; runs: Map<string, Json> }>;
  /** Entries `GET /models` lists besides the usual ones (e.g. with a shutdown date), replacing same ids. */
  models?: Json[] | undefined;
}

export function newState(): FakeState {
  return { files: new Map(), batches: new Map(), ftJobs: new Map(), assistants: new Map(), threads: new Map() };
}

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Path without the query string, including /v1. */
  pathname: string;
  body: Buffer;
  knobs: Knobs;
  state: FakeState;
  params: Record<string, string>;
  rec: RecordedRequest | undefined;
  requestId: string;
  startedAt: number;
  /** Set once the response 'close' event fired (finished or connection gone). */
  closed: boolean;
  /** Headers a script step adds to (or overrides on) every answer of this request. */
  extraHeaders?: Record<string, string> | undefined;
  /** Short sha256 of method + path + body, the seed of all generated ids. */
  readonly hash: string;
  /** Waits `ms`; resolves false (early) if the connection closed meanwhile. */
  sleep(ms: number): Promise<boolean>;
  /** Flushes what was written, then destroys the socket abruptly. */
  cut(): Promise<void>;
}

export function shortHash(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 24);
}

// ---------------------------------------------------------------- content

const PIECES = ['héllo ', 'wörld 👋 '] as const;
/** Content of stream delta `i` (multi-byte UTF-8 on purpose). */
export function fakeChunk(i: number): string {
  return PIECES[i % 2]!;
}
/** Full answer text for `n` chunks: the concatenation of fakeChunk(0..n-1). */
export function fakeText(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += fakeChunk(i);
  return s;
}

function countChars(v: unknown): number {
  if (typeof v === 'string') return v.length;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + countChars(x), 0);
  if (v !== null && typeof v === 'object') return Object.values(v).reduce((n: number, x) => n + countChars(x), 0);
  return 0;
}

export interface TokenCounts { prompt: number; cached: number; completion: number }

/** Usage numbers for a request body: prompt from text size (or x-fake-prompt-tokens), completion = chunks. */
export function tokenCounts(ctx: Ctx, body: Json): TokenCounts {
  const chars = countChars([body.messages, body.input, body.prompt, body.instructions, body.tools]);
  const prompt = ctx.knobs.promptTokens ?? Math.max(1, Math.ceil(chars / 4));
  return { prompt, cached: Math.min(ctx.knobs.cachedTokens, prompt), completion: ctx.knobs.chunks };
}

// ---------------------------------------------------------------- headers and writers

const STATIC_HEADERS = {
  'openai-version': '2020-10-01',
  'openai-organization': 'fake-org',
  'x-ratelimit-limit-requests': '30000',
  'x-ratelimit-remaining-requests': '29999',
  'x-ratelimit-limit-tokens': '150000000',
  'x-ratelimit-remaining-tokens': '149999000',
  'x-ratelimit-reset-requests': '2ms',
  'x-ratelimit-reset-tokens': '0s',
  'set-cookie': '__cf_bm=fake; path=/',
} as const;

export function baseHeaders(ctx: Ctx): Record<string, string | number> {
  return {
    ...STATIC_HEADERS,
    'x-request-id': ctx.requestId,
    'openai-processing-ms': Math.max(0, Date.now() - ctx.startedAt),
    ...ctx.extraHeaders,
  };
}

/** Sends a complete (non-SSE) body, or half of it and a cut if x-fake-cut-after is set. */
export function sendBody(
  ctx: Ctx,
  status: number,
  body: Buffer,
  contentType: string,
  extra?: Record<string, string | number>,
): void {
  if (ctx.closed || ctx.res.headersSent) return;
  ctx.res.writeHead(status, {
    ...baseHeaders(ctx),
    'content-type': contentType,
    'content-length': body.length,
    ...extra,
  });
  if (ctx.knobs.cutAfter !== undefined) {
    ctx.res.write(body.subarray(0, body.length >> 1), () => void ctx.cut());
    return;
  }
  ctx.res.end(body);
}

export function sendJson(ctx: Ctx, status: number, obj: unknown, extra?: Record<string, string | number>): void {
  sendBody(ctx, status, Buffer.from(ctx.knobs.pretty ? JSON.stringify(obj, null, 2) : JSON.stringify(obj)), 'application/json', extra);
}

export function errorBody(message: string, type: string, param: string | null = null, code: string | null = null) {
  return { error: { message, type, param, code } };
}

export function sendError(
  ctx: Ctx,
  status: number,
  message: string,
  opts: { type?: string; param?: string | null; code?: string | null; headers?: Record<string, string | number> } = {},
): void {
  const type = opts.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
  sendJson(ctx, status, errorBody(message, type, opts.param ?? null, opts.code ?? null), opts.headers);
}

export function notFound(ctx: Ctx): void {
  sendError(ctx, 404, `Invalid URL (${ctx.method} ${ctx.pathname})`);
}

const BAD_JSON =
  "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

/** Parses the body as a JSON object (empty body = {}); on failure answers 400 and returns undefined. */
export function readJson(ctx: Ctx): Json | undefined {
  if (ctx.body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(ctx.body.toString('utf8'));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  } catch {
    // fall through
  }
  sendError(ctx, 400, BAD_JSON);
  return undefined;
}

/** Like readJson, plus required string fields (answers 400 on a missing one). */
export function readJsonWith(ctx: Ctx, ...required: string[]): Json | undefined {
  const body = readJson(ctx);
  if (!body) return undefined;
  for (const key of required) {
    if (body[key] === undefined || body[key] === null) {
      sendError(ctx, 400, `Missing required parameter: '${key}'.`, { param: key, code: 'missing_required_parameter' });
      return undefined;
    }
  }
  return body;
}

/** Parses a multipart/form-data body with the platform's Request; answers 400 and returns undefined on failure. */
export async function readForm(ctx: Ctx): Promise<FormData | undefined> {
  const ct = ctx.req.headers['content-type'] ?? '';
  if (ct.startsWith('multipart/form-data')) {
    try {
      return await new Request('http://fake.invalid/', { method: 'POST', headers: { 'content-type': ct }, body: ctx.body }).formData();
    } catch {
      // fall through
    }
  }
  sendError(ctx, 400, 'Expected a valid multipart/form-data body.');
  return undefined;
}

export function formString(form: FormData, key: string): string | undefined {
  const v = form.get(key);
  return typeof v === 'string' ? v : undefined;
}

/** Writer of one SSE response; honours chunk delay, cut-after, backpressure and disconnects. */
export class SseWriter {
  private count = 0;
  private stopped = false;

  constructor(private readonly ctx: Ctx) {}

  /** Sends the response headers; returns false if the stream must stop (closed or cut at 0). */
  async start(): Promise<boolean> {
    const { ctx } = this;
    if (ctx.closed) return false;
    ctx.res.writeHead(200, {
      ...baseHeaders(ctx),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
    });
    if (ctx.knobs.cutAfter === 0) {
      ctx.res.flushHeaders();
      await this.stop();
      return false;
    }
    return true;
  }

  /** Writes one raw event (already framed); returns false if the stream must stop. */
  async event(frame: string): Promise<boolean> {
    const { ctx } = this;
    if (this.stopped || ctx.closed) return false;
    if (this.count > 0 && ctx.knobs.chunkDelayMs > 0 && !(await ctx.sleep(ctx.knobs.chunkDelayMs))) return false;
    const ok = ctx.res.write(frame);
    this.count++;
    if (ctx.knobs.cutAfter !== undefined && this.count >= ctx.knobs.cutAfter) {
      await this.stop();
      return false;
    }
    if (!ok) await drainOrClose(ctx);
    return !ctx.closed;
  }

  data(obj: unknown): Promise<boolean> {
    return this.event(`data: ${JSON.stringify(obj)}\n\n`);
  }

  named(type: string, obj: unknown): Promise<boolean> {
    return this.event(`event: ${type}\ndata: ${JSON.stringify(obj)}\n\n`);
  }

  end(): void {
    if (!this.stopped && !this.ctx.closed) this.ctx.res.end();
  }

  private async stop(): Promise<void> {
    this.stopped = true;
    await this.ctx.cut();
  }
}

export function drainOrClose(ctx: Ctx): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.closed) return resolve();
    const done = () => {
      ctx.res.off('drain', done);
      ctx.res.off('close', done);
      resolve();
    };
    ctx.res.on('drain', done);
    ctx.res.on('close', done);
  });
}
