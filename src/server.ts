/**
 * Process entry: the only reader of process.env. Loads and validates the config, builds the app,
 * listens, and drains gracefully on SIGTERM / SIGINT.
 */
import { buildApp } from './app.js';
import { ConfigError, loadConfigFile } from './config/load.js';
import { createLogSink } from './lifecycle/log-sink.js';

async function main(): Promise<void> {
  const env = process.env;
  const configPath = env.TOLLGATE_CONFIG ?? 'config/tollgate.yaml';
  const config = await loadConfigFile(configPath, env);
  // Log lines are written asynchronously in batches of 64 KiB (one write per line would cost a
  // system call per request), flushed at least every 250 ms and before the process exits.
  const logs = createLogSink({ fd: 1 });
  setInterval(() => logs.flush(), 250).unref();
  // Any exit, a crash included: what waits is written synchronously.
  process.once('exit', () => logs.flushSync());
  const app = await buildApp({
    config,
    upstreamUrl: env.TOLLGATE_UPSTREAM_URL ?? 'https://api.openai.com/v1',
    upstreamApiKey: env.OPENAI_API_KEY || undefined,
    redisUrl: env.REDIS_URL || undefined,
    logLevel: env.LOG_LEVEL ?? 'info',
    logStream: logs,
    adminToken: env.TOLLGATE_ADMIN_TOKEN || undefined,
  });
  if (!env.OPENAI_API_KEY) app.log.warn('OPENAI_API_KEY is not set: upstream requests carry no credential');

  const port = Number(env.PORT ?? 8080);
  const host = env.HOST ?? '0.0.0.0';
  const address = await app.listen({ port, host });
  app.log.info({ address, config: configPath, keys: config.keys.length }, 'tollgate listening');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    const graceMs = config.server.shutdown_grace_ms;
    app.log.info({ signal, grace_ms: graceMs }, 'draining: no new connections, waiting for in-flight requests');
    const deadline = setTimeout(() => {
      app.log.warn({ grace_ms: graceMs }, 'shutdown deadline reached: closing remaining connections');
      app.server.closeAllConnections();
    }, graceMs);
    deadline.unref();
    app
      .close()
      .then(() => {
        clearTimeout(deadline);
        app.log.info('stopped');
        logs.end(() => process.exit(0));
      })
      .catch((err: unknown) => {
        app.log.error({ err }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`tollgate: ${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  process.stderr.write(`tollgate: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
