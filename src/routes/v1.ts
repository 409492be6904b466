import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { KeyStore } from '../auth/keys.js';
import type { Catalogue } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import {
  BodyTooLargeError,
  ClientGoneError,
  InvalidJsonError,
  UpstreamInterruptedError,
  UpstreamTimeoutError,
} from '../errors/errors.js';
import { mapUpstreamError } from '../errors/upstream-errors.js';
import { admit } from '../proxy/admission.js';
import { pipeBody, relaySse } from '../streaming/relay.js';
import type { Upstream } from '../upstream/client.js';
import { clientResponseHeaders, upstreamRequestHeaders, type UpstreamIdentity } from '../upstream/headers.js';
import { ENDPOINTS, type Endpoint } from './endpoints.js';

export interface V1Deps {
  readonly config: Config;
  readonly catalogue: Catalogue;
  readonly keys: KeyStore;
  readonly upstream: Upstream;
  readonly identity: UpstreamIdentity;
}

/** A JSON request body: the bytes as received (forwarded untouched) and their parsed value. */
export class JsonBody {
  constructor(
    readonly raw: Buffer,
    readonly value: unknown,
  ) {}
}

function hasRequestBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Count an upload's bytes on their way upstream and stop it at the limit. Nothing is buffered whole. */
function limitUpload(source: IncomingMessage, limitBytes: number): Readable {
  const declared = Number(source.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) throw new BodyTooLargeError(limitBytes);
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limitBytes) callback(new BodyTooLargeError(limitBytes));
      else callback(null, chunk);
    },
  });
  source.on('error', (err) => counter.destroy(err));
  return source.pipe(counter);
}

export async function v1Routes(app: FastifyInstance, deps: V1Deps): Promise<void> {
  const { config, catalogue, keys, upstream, identity } = deps;

  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.server.body_limit_bytes }, (_req, raw, done) => {
    const bytes = raw as Buffer;
    try {
      done(null, new JsonBody(bytes, JSON.parse(bytes.toString('utf8'))));
    } catch {
      done(new InvalidJsonError(), undefined);
    }
  });
  // Everything else (multipart uploads, audio, …) stays an unread stream, piped upstream as it arrives.
  app.removeContentTypeParser(['text/plain']);
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  app.addHook('onRequest', (request, _reply, done) => {
    try {
      request.tollgate.caller = keys.authenticate(request.headers.authorization);
      done();
    } catch (err) {
      done(err as Error);
    }
  });

  for (const endpoint of ENDPOINTS) {
    app.route({
      method: [...endpoint.methods],
      url: endpoint.url,
      handler: (request, reply) => forward(endpoint, request, reply),
    });
  }

  async function forward(endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const state = request.tollgate;
    const json = request.body instanceof JsonBody ? request.body : undefined;
    let payload: Buffer | Readable | undefined = json?.raw;
    if (json) {
      const admitted = admit(endpoint, json.value, catalogue, config);
      const admission = admitted instanceof Promise ? await admitted : admitted;
      state.model = admission.requestedModel;
      state.modelLabel = admission.model?.name ?? (admission.requestedModel === undefined ? 'none' : 'other');
      state.stream = admission.stream;
      if (admission.rewriteModelTo !== undefined) {
        payload = Buffer.from(JSON.stringify({ ...(json.value as object), model: admission.rewriteModelTo }));
      }
    } else if (hasRequestBody(request.raw)) {
      payload = limitUpload(request.raw, config.server.upload_limit_bytes);
    }

    // undici accepts an EventEmitter as abort signal: cheaper than an AbortController per request.
    const abort = new EventEmitter();
    let clientGone = false;
    state.abortUpstream = () => {
      clientGone = true;
      abort.emit('abort');
    };
    state.upstreamStart = performance.now();
    let response;
    try {
      response = await upstream.send({
        method: request.method as Dispatcher.HttpMethod,
        path: request.url.slice('/v1'.length),
        headers: upstreamRequestHeaders(request.headers, identity, {
          contentLength: Buffer.isBuffer(payload) ? payload.length : undefined,
          identityEncoding: endpoint.usage !== undefined,
        }),
        body: payload,
        signal: abort,
      });
    } catch (err) {
      state.upstreamEnd = performance.now();
      if (clientGone) throw new ClientGoneError();
      throw mapUpstreamError(err) ?? err;
    }
    state.upstreamStatus = response.status;
    const contentType = response.headers['content-type'];
    const isSse = typeof contentType === 'string' && contentType.startsWith('text/event-stream');
    // Answers bypass Fastify's reply pipeline and go straight into the socket; the head carries
    // the headers set so far (x-request-id) and the upstream's.
    reply.hijack();
    reply.raw.writeHead(response.status, {
      ...(reply.getHeaders() as Record<string, string | string[]>),
      ...clientResponseHeaders(response.headers, !isSse),
    });
    if (!isSse) {
      pipeBody(response.body, reply.raw, {
        onEnd: (end) => {
          state.upstreamEnd = performance.now();
          if (end.error) state.streamEnd = 'upstream_error';
        },
      });
      return reply;
    }
    state.stream = true;
    relaySse(response.body, reply.raw, {
      shape: endpoint.usage,
      mapError: (err) => {
        const mapped = mapUpstreamError(err);
        return mapped instanceof UpstreamTimeoutError ? mapped : new UpstreamInterruptedError();
      },
      onEnd: (outcome) => {
        state.upstreamEnd = performance.now();
        state.usage = outcome.usage;
        state.streamEnd = outcome.clientGone
          ? 'client_gone'
          : outcome.error
            ? 'upstream_error'
            : outcome.completed || !endpoint.usage
              ? 'completed'
              : 'truncated';
      },
    });
    return reply;
  }
}
