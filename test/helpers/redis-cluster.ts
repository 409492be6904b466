// A real local Redis Cluster for tests: three masters (redis-server --cluster-enabled yes) joined
// with `redis-cli --cluster create`, no replicas, no persistence.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { startRedisServer, type RedisServer } from './redis-server.js';

const run = promisify(execFile);

export interface RedisCluster {
  /** `127.0.0.1:<port>` of each master: tollgate's `redis.cluster_nodes`. */
  readonly nodes: string[];
  readonly servers: RedisServer[];
  stop(): Promise<void>;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port whose cluster-bus twin (port + 10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const taken = new Set<number>();
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await clusterPort(taken);
      servers.push(
        await startRedisServer({ port, args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'] }),
      );
    }
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    for (let attempt = 0; ; attempt++) {
      const infos = await Promise.all(servers.map((s) => run('redis-cli', ['-p', String(s.port), 'cluster', 'info'])));
      if (infos.every((info) => info.stdout.includes('cluster_state:ok'))) break;
      if (attempt > 100) throw new Error('Redis Cluster did not reach cluster_state:ok');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { nodes, servers, stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
}
