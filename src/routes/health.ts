import type { FastifyInstance } from 'fastify';

export interface HealthDeps {
  /** True from SIGTERM on: load balancers should stop sending new requests. */
  readonly isDraining: () => boolean;
}

/** `/healthz`: the process is alive. `/readyz`: config loaded, Redis reachable when configured, not draining. */
export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (deps.isDraining()) return reply.code(503).send({ status: 'draining' });
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
