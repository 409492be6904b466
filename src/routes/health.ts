import type { FastifyInstance } from 'fastify';

export interface HealthDeps {
  /** True from SIGTERM on: load balancers should stop sending new requests. */
  readonly isDraining: () => boolean;
  /** The upstream pool: not ready while some model has no upstream in service. */
  readonly upstreams: { ready(): boolean; health(): Record<string, string> };
}

/** `/healthz`: the process is alive. `/readyz`: config loaded, Redis reachable when configured, an upstream in service for every model, not draining. */
export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (deps.isDraining()) return reply.code(503).send({ status: 'draining' });
    if (!deps.upstreams.ready()) return reply.code(503).send({ status: 'unavailable', upstreams: deps.upstreams.health() });
    const redis = app.redis;
    if (redis) {
      try {
        await redis.ping();
      } catch {
        return reply.code(503).send({ status: 'unavailable', redis: 'unreachable' });
      }
      return { status: 'ready', redis: 'ok' };
    }
    return { status: 'ready' };
  });
}
