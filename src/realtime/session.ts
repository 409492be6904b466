import { performance } from 'node:perf_hooks';
import type { RawData, WebSocket } from 'ws';
import type { Caller } from '../auth/keys.js';
import type { ModelInfo } from '../config/catalogue.js';
import type { Usage } from '../usage/extract.js';
import type { Cost } from '../usage/cost.js';
import { admitResponse, chargeAfter, isRefusal, type Admitter } from './admit.js';
import { type Held, Ledger, settleHeld } from './ledger.js';
import { createMeter, outputCap, outputEstimate, readRealtimeUsage } from './meter.js';
import type { RealtimeMetrics } from './metrics.js';
import { createPipe } from './pipe.js';
import { errorEvent, parseObject, rateLimitsEvent, refusalEvent, textChars } from './events.js';

export interface SessionDeps extends Admitter {
  readonly metrics: RealtimeMetrics;
  readonly highWater: number;
  readonly pingIntervalMs: number;
  readonly charsPerToken: number;
  readonly audioBytesPerToken: number;
  readonly defaultOutputTokens: number;
  /** Count a response's usage in the gateway's metrics; returns its cost. */
  readonly observe: (caller: Caller, model: string, usage: Usage, source: 'reported' | 'estimated') => Cost;
  readonly logResponse: (line: Record<string, unknown>) => void;
  readonly logSession: (line: Record<string, unknown>) => void;
}

export interface SessionInit {
  readonly id: string;
  readonly client: WebSocket;
  readonly upstream: WebSocket;
  readonly caller: Caller;
  readonly model: ModelInfo | undefined;
  readonly modelLabel: string;
  /** The key's x-ratelimit-* figures from the session's admission. */
  readonly limitHeaders: Readonly<Record<string, string>>;
  /** An ephemeral secret's session settings, sent upstream before any client event. */
  readonly initialUpdate: Record<string, unknown> | undefined;
  readonly onEnd: () => void;
}

/** Upstream events worth parsing; looked for in the first bytes of a frame only (the `type` leads). */
const WATCHED = ['"response.created"', '"response.done"', '"rate_limits.updated"', '"error"'].map((s) => Buffer.from(s));
const HEAD_BYTES = 256;

/** One realtime session: the client's events admitted and relayed, the upstream's metered and relayed. */
export function runSession(deps: SessionDeps, init: SessionInit): { close(code: number, reason: string): void; terminate(): void; buffered(): number } {
  const { client, upstream, caller, model, modelLabel } = init;
  const started = performance.now();
  const ledger = new Ledger();
  const meter = createMeter(model, deps.charsPerToken, deps.audioBytesPerToken);
  let limitHeaders = init.limitHeaders;
  let sessionCap: unknown;
  const totals = { responses: 0, inputTokens: 0, outputTokens: 0, costNano: 0 };
  deps.metrics.opened();

  const settle = (held: Held, usage: Usage, source: 'reported' | 'estimated'): void => {
    settleHeld(held, usage);
    const cost = deps.observe(caller, modelLabel, usage, source);
    deps.metrics.response(modelLabel, usage, cost);
    totals.responses++;
    totals.inputTokens += usage.inputTokens;
    totals.outputTokens += usage.outputTokens;
    totals.costNano += cost.total;
    deps.logResponse({ session_id: init.id, key_id: caller.id, model: modelLabel, response_id: held.responseId, input_tokens: usage.inputTokens, cached_tokens: usage.cachedTokens, output_tokens: usage.outputTokens, modalities: usage.realtime, tokens_source: source, cost_usd: cost.total / 1e9, cost_nano: cost.total });
  };

  const pipe = createPipe(client, upstream, {
    highWater: deps.highWater,
    pingIntervalMs: deps.pingIntervalMs,
    metrics: deps.metrics,
    onEnd(end) {
      for (const cut of ledger.end((bytes) => outputEstimate(bytes, deps.charsPerToken, deps.audioBytesPerToken))) settle(cut.held, cut.usage, cut.source);
      const durationMs = performance.now() - started;
      deps.metrics.closed(durationMs);
      deps.logSession({ session_id: init.id, key_id: caller.id, model: modelLabel, duration_ms: Math.round(durationMs), close_by: end.by, close_code: end.code, close_reason: end.reason || undefined, responses: totals.responses, input_tokens: totals.inputTokens, output_tokens: totals.outputTokens, cost_usd: totals.costNano / 1e9, cost_nano: totals.costNano });
      init.onEnd();
    },
  });

  // ---- upstream → client: relayed as is, except rate_limits.updated (the key's own figures).
  const fromUpstream = (data: Buffer, binary: boolean): void => {
    ledger.relayed(data.length);
    if (binary || !watched(data)) return pipe.toClient(data, binary);
    const event = parseObject(data.toString('utf8'));
    switch (event?.type) {
      case 'response.created':
        onCreated(event);
        break;
      case 'response.done':
        onDone(event);
        break;
      case 'rate_limits.updated':
        return pipe.toClient(rateLimitsEvent(event, limitHeaders), false);
      case 'error':
        onUpstreamError(event);
        break;
    }
    pipe.toClient(data, false);
  };
  const onCreated = (event: Record<string, unknown>): void => {
    const id = responseIdOf(event);
    if (id === undefined || ledger.created(id)) return;
    // Started by the server itself (turn detection): admitted now; refused → cancelled at once.
    const admitted = admit(null, undefined, true);
    ledger.run(id, admitted.held);
    void admitted.outcome.then((refusal) => {
      if (!refusal) return;
      pipe.toUpstream(JSON.stringify({ type: 'response.cancel', response_id: id }), false);
      refuse(refusal.reason, refusal.event);
    });
  };
  const onDone = (event: Record<string, unknown>): void => {
    const response = event.response as Record<string, unknown> | undefined;
    const id = responseIdOf(event);
    const held = id === undefined ? undefined : ledger.done(id);
    const usage = readRealtimeUsage(response?.usage);
    if (usage) meter.answered(usage);
    if (!held) return;
    if (usage) settle(held, usage, 'reported');
    else settle(held, { inputTokens: held.estimate, cachedTokens: 0, outputTokens: outputEstimate(held.relayedBytes, deps.charsPerToken, deps.audioBytesPerToken) }, 'estimated');
  };
  const onUpstreamError = (event: Record<string, unknown>): void => {
    const answering = (event.error as Record<string, unknown> | undefined)?.event_id;
    if (typeof answering === 'string') ledger.refused(answering);
  };

  // ---- client → upstream: parsed, admitted where it starts a response, in order.
  /**
   * `started`: the upstream already runs the response, so a refused one is still charged what it uses.
   * `ownTokens`: the response's own input (its instructions, input items and tools), on top of the conversation.
   */
  const admit = (clientEventId: string | null, requestedCap?: unknown, started = false, ownTokens = 0): { held: Held; outcome: Promise<{ reason: string; event: string } | undefined> } => {
    const estimate = meter.estimate() + ownTokens;
    const cap = outputCap(requestedCap, sessionCap, model, deps.defaultOutputTokens);
    const answer = admitResponse(deps, caller, model, modelLabel, estimate, cap);
    const reservation = answer.then((r) => (!isRefusal(r) ? r : started ? chargeAfter(deps, caller, model, modelLabel) : undefined));
    const held: Held = { reservation, estimate, clientEventId, relayedBytes: 0 };
    const outcome = answer.then((r) => {
      if (isRefusal(r)) return { reason: r.reason, event: refusalEvent(r.error, clientEventId) };
      if (Object.keys(r.headers).length > 0) limitHeaders = r.headers;
      return undefined;
    });
    return { held, outcome };
  };
  const handleClient = (data: Buffer, binary: boolean): void | Promise<void> => {
    if (binary) return refuse('invalid_event', errorEvent('invalid_request_error', 'invalid_event', 'Binary frames are not supported: send events as JSON text.', null));
    const text = data.toString('utf8');
    const event = parseObject(text);
    if (!event || typeof event.type !== 'string') return refuse('invalid_event', errorEvent('invalid_request_error', 'invalid_json', 'The event is not a JSON object with a `type`.', null));
    const clientEventId = typeof event.event_id === 'string' ? event.event_id : null;
    // What goes upstream is what tollgate read: the client's bytes when they can mean nothing else.
    const out = event.type === 'input_audio_buffer.append' && unambiguous(text) ? data : JSON.stringify(event);
    switch (event.type) {
      case 'input_audio_buffer.append':
        meter.addAudio(typeof event.audio === 'string' ? event.audio.length : 0);
        break;
      case 'conversation.item.create':
        meter.addText(textChars(event.item));
        break;
      case 'session.update': {
        const session = (event.session ?? {}) as Record<string, unknown>;
        if (!sameModel(session)) return refuse('model', errorEvent('invalid_request_error', 'invalid_value', `The session's model cannot be changed through tollgate (connected as \`${modelLabel}\`).`, clientEventId, 'session.model'));
        sessionCap = session.max_output_tokens ?? session.max_response_output_tokens ?? sessionCap;
        meter.addText(typeof session.instructions === 'string' ? session.instructions.length : 0);
        break;
      }
      case 'response.create': {
        const response = (event.response ?? {}) as Record<string, unknown>;
        if (!sameModel(response)) return refuse('model', errorEvent('invalid_request_error', 'invalid_value', `A response's model cannot differ from the session's through tollgate (connected as \`${modelLabel}\`).`, clientEventId, 'response.model'));
        const own = Math.ceil(textChars([response.instructions, response.input, response.tools]) / deps.charsPerToken);
        const admitted = admit(clientEventId, response.max_output_tokens ?? response.max_response_output_tokens, false, own);
        return admitted.outcome.then((refusal) => {
          if (refusal) return refuse(refusal.reason, refusal.event);
          ledger.expect(admitted.held);
          pipe.toUpstream(out, false);
        });
      }
    }
    pipe.toUpstream(out, false);
  };
  /** No `model`, or the session's own (its name or an alias); any other value or shape is refused. */
  const sameModel = (settings: Record<string, unknown>): boolean => {
    if (!('model' in settings)) return true;
    const named = settings.model;
    if (typeof named !== 'string') return false;
    // A pass-through (uncatalogued) session may name only uncatalogued models: all are `other`.
    return deps.catalogue.resolve(named)?.name === model?.name;
  };
  const refuse = (reason: string, event: string): void => {
    deps.metrics.refused(reason);
    pipe.toClient(event, false);
  };

  // Frames that arrive while a response.create waits for its admission queue behind it, in order.
  const queue: [Buffer, boolean][] = [];
  let queued = 0;
  let blocked = false;
  const drain = (): void => {
    blocked = false;
    while (queue.length > 0 && !blocked) {
      const [data, binary] = queue.shift() as [Buffer, boolean];
      queued -= data.length;
      step(data, binary);
    }
    if (queued <= deps.highWater / 2) pipe.holdClient(false);
  };
  const step = (data: Buffer, binary: boolean): void => {
    const pending = handleClient(data, binary);
    if (!pending) return;
    blocked = true;
    void pending.catch(() => undefined).then(drain);
  };
  const fromClient = (data: Buffer, binary: boolean): void => {
    if (!blocked) return step(data, binary);
    queue.push([data, binary]);
    queued += data.length;
    if (queued > deps.highWater) pipe.holdClient(true);
  };

  if (init.initialUpdate) pipe.toUpstream(JSON.stringify({ type: 'session.update', session: init.initialUpdate }), false);
  upstream.on('message', (data: RawData, binary: boolean) => fromUpstream(asBuffer(data), binary));
  client.on('message', (data: RawData, binary: boolean) => fromClient(asBuffer(data), binary));
  upstream.resume();
  return {
    close: (code, reason) => pipe.closeBoth(code, reason),
    terminate() {
      client.terminate();
      upstream.terminate();
    },
    buffered: () => client.bufferedAmount + upstream.bufferedAmount + queued,
  };
}

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

function watched(data: Buffer): boolean {
  const head = data.length > HEAD_BYTES ? data.subarray(0, HEAD_BYTES) : data;
  for (const needle of WATCHED) if (head.includes(needle)) return true;
  return false;
}

/** An append whose bytes hold one `type` key and no escapes: every JSON parser reads it as tollgate did. */
function unambiguous(text: string): boolean {
  const first = text.indexOf('"type"');
  return first !== -1 && text.indexOf('"type"', first + 6) === -1 && !text.includes('\\');
}

function responseIdOf(event: Record<string, unknown>): string | undefined {
  const id = (event.response as Record<string, unknown> | undefined)?.id;
  return typeof id === 'string' ? id : undefined;
}
