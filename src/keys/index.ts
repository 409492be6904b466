import type { FastifyInstance } from 'fastify';
import type { Catalogue } from '../config/catalogue.js';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { unknownPolicyModel } from './admin.js';
import { createMemoryKeyBackend, type KeyBackend } from './backend.js';
import { createRedisKeyBackend } from './redis-backend.js';
import { createKeyStore, type KeyStore } from './registry.js';

export interface GatewayKeys {
  readonly keys: KeyStore;
  /** Where keys created through the admin API live. */
  readonly backend: KeyBackend;
}

/**
 * The key store as the gateway runs it: static keys from the config file, run-time keys in Redis
 * (in process memory without Redis: gone on restart), each instance's cache invalidated by pub/sub.
 */
export async function createGatewayKeys(app: FastifyInstance, config: Config, catalogue: Catalogue): Promise<GatewayKeys> {
  if (config.models.unknown === 'reject') {
    config.keys.forEach((entry, i) => {
      const unknown = unknownPolicyModel(entry, catalogue);
      if (unknown) throw new ConfigError(`Invalid config: keys[${i}].${unknown.path}: the model ${unknown.model} is not in the catalogue`);
    });
  }
  let warned = 0;
  const onError = (err: unknown): void => {
    // One line per second at most: a Redis outage must not flood the log.
    if (Date.now() - warned < 1000) return;
    warned = Date.now();
    app.log.warn({ err: err instanceof Error ? { message: err.message } : undefined }, 'key store: redis error (cached keys keep working)');
  };
  const backend = app.redis ? createRedisKeyBackend({ redis: app.redis, keyPrefix: config.limits.key_prefix, onError }) : createMemoryKeyBackend();
  const keys = createKeyStore(config.keys, { catalogue, backend, cacheTtlMs: config.key_store.cache_ttl_ms, onBackendError: onError });
  for (const id of keys.publicKeyIds) {
    app.log.warn(
      { key_id: id },
      `KEY ${id} USES THE PUBLISHED DEMO SECRET: it is accepted only from this machine (loopback). Set TOLLGATE_DEMO_KEY (or the key's secret) to a secret of your own, e.g. tg-$(openssl rand -hex 24), to use it from elsewhere.`,
    );
  }
  await backend.subscribe((id) => keys.invalidate(id));
  app.addHook('onClose', () => backend.close());
  return { keys, backend };
}
