import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Caller } from '../auth/keys.js';
import type { Catalogue } from '../config/catalogue.js';
import type { Config } from '../config/schema.js';
import type { KeyStore } from '../keys/registry.js';
import type { Limiter } from '../limits/limiter.js';
import type { RedisClient } from '../plugins/redis.js';
import type { Quotas } from '../quota/charge.js';
import type { UpstreamIdentity } from '../upstream/headers.js';
import type { Cost } from '../usage/cost.js';
import type { Usage } from '../usage/extract.js';
import { clientSecretRoutes } from './client-secrets.js';
import { createRealtimeMetrics } from './metrics.js';
import { createEphemeralSecrets } from './secrets.js';
import { runSession } from './session.js';
import { createUpgradeHandler } from './upgrade.js';

export interface RealtimeOptions {
  readonly config: Config;
  /** An upgrade request's socket is the session's from now on (the HTTP drain leaves it alone). */
  readonly onUpgrade: (socket: Socket) => void;
  readonly catalogue: Catalogue;
  readonly keys: KeyStore;
  readonly callerById: (id: string) => Promise<Caller | undefined>;
  readonly limiter: Limiter;
  readonly quotas: Quotas;
  readonly redis: RedisClient | undefined;
  readonly registry: Registry;
  readonly upstreamBaseUrl: string;
  readonly identity: UpstreamIdentity;
  readonly logger: FastifyBaseLogger;
  readonly onRefused: (keyId: string, model: string, limit: string) => void;
  readonly observe: (caller: Caller, model: string, usage: Usage, source: 'reported' | 'estimated') => Cost;
}

/** How long a closing session waits for its peers' close frames at shutdown before cutting them. */
const CLOSE_WAIT_MS = 1000;

/** Largest frame either side may send (OpenAI takes audio appends of up to 15 MiB). */
const MAX_PAYLOAD = 16 * 1024 * 1024;

/**
 * `/v1/realtime` over WebSocket on the app's HTTP server, and the ephemeral secrets' routes
 * (registered by the v1 routes, behind their authentication). Sessions are told to go (1001) at
 * the end of the shutdown grace period; new upgrades are refused 503 as soon as it starts.
 */
export function setupRealtime(app: FastifyInstance, options: RealtimeOptions): { routes: (app: FastifyInstance) => Promise<void> } {
  const { config } = options;
  const sessions = new Set<{ close(code: number, reason: string): void; terminate(): void; buffered(): number }>();
  /** Waiting for the last session to end (shutdown). */
  const idle: (() => void)[] = [];
  const metrics = createRealtimeMetrics(options.registry, () => {
    let bytes = 0;
    for (const session of sessions) bytes += session.buffered();
    return bytes;
  });
  const secrets = createEphemeralSecrets(options.redis, config.limits.key_prefix);
  const idPrefix = `rt_${randomBytes(6).toString('hex')}`;
  let counter = 0;

  const onUpgrade = createUpgradeHandler(
    {
      keys: options.keys,
      secrets,
      callerById: options.callerById,
      catalogue: options.catalogue,
      limiter: options.limiter,
      quotas: options.quotas,
      rejectUnknownModels: config.models.unknown === 'reject',
      upstreamBaseUrl: options.upstreamBaseUrl,
      identity: options.identity,
      connectTimeoutMs: config.upstream.connect_timeout_ms,
      maxPayload: MAX_PAYLOAD,
      isDraining: () => app.draining,
      newId: () => idPrefix + (counter++).toString(16).padStart(8, '0'),
      onRefused: options.onRefused,
      onError: (err) => options.logger.error({ err }, 'realtime: unexpected error before the upgrade'),
    },
    (accepted) => {
      const session = runSession(
        {
          limiter: options.limiter,
          quotas: options.quotas,
          catalogue: options.catalogue,
          onRefused: options.onRefused,
          metrics,
          highWater: config.realtime.max_buffered_bytes,
          pingIntervalMs: config.realtime.ping_interval_ms,
          charsPerToken: config.estimation.chars_per_token,
          audioBytesPerToken: config.realtime.audio_bytes_per_token,
          defaultOutputTokens: config.limits.default_output_tokens,
          observe: options.observe,
          logResponse: (line) => options.logger.info(line, 'realtime response'),
          logSession: (line) => options.logger.info(line, 'realtime session'),
        },
        {
          ...accepted,
          initialUpdate: accepted.grant && Object.keys(accepted.grant.session).length > 0 ? accepted.grant.session : undefined,
          onEnd: () => {
            sessions.delete(session);
            if (sessions.size === 0) for (const resolve of idle.splice(0)) resolve();
          },
        },
      );
      sessions.add(session);
    },
  );
  const listener = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    options.onUpgrade(socket);
    onUpgrade(req, socket, head);
  };
  app.server.on('upgrade', listener);

  let goodbye: NodeJS.Timeout | undefined;
  const closeAll = (): void => {
    for (const session of sessions) session.close(1001, 'server shutting down');
  };
  app.addHook('preClose', (done) => {
    // /readyz is 503 and upgrades are refused from now on; open sessions get the grace period.
    if (sessions.size > 0) goodbye = setTimeout(closeAll, config.server.shutdown_grace_ms);
    done();
  });
  app.addHook('onClose', async () => {
    if (goodbye) clearTimeout(goodbye);
    closeAll();
    // The sessions end (their responses settled and logged) before the app's stores close; a peer
    // that does not answer the close handshake within CLOSE_WAIT_MS is cut.
    if (sessions.size > 0) {
      const ended = new Promise<void>((resolve) => idle.push(resolve));
      const cut = setTimeout(() => {
        for (const session of sessions) session.terminate();
      }, CLOSE_WAIT_MS);
      await ended;
      clearTimeout(cut);
    }
    secrets.close();
    app.server.off('upgrade', listener);
  });

  return {
    routes: clientSecretRoutes({
      secrets,
      catalogue: options.catalogue,
      rejectUnknownModels: config.models.unknown === 'reject',
      defaultTtlS: config.realtime.client_secret_ttl_s,
      maxTtlS: config.realtime.client_secret_max_ttl_s,
    }),
  };
}
