/**
 * What bench/instructions.ts and bench/gc.ts share: the targets they measure, the fake upstream
 * and a fixed number of `chat` requests driven at a fixed concurrency.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import { getFreePort, startChild, type Child } from './processes.js';
import { SCENARIOS } from './scenarios.js';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const TARGETS = ['bare', 'tollgate', 'tollgate-redis'] as const;

/** The targets named on the command line (all by default); tollgate's need a build. */
export function targetsFromArgs(argv: readonly string[]): string[] {
  const targets = argv.length > 0 ? [...argv] : [...TARGETS];
  for (const target of targets) {
    if (!(TARGETS as readonly string[]).includes(target)) throw new Error(`unknown target ${target} (${TARGETS.join(', ')})`);
  }
  if (targets.some((t) => t !== 'bare') && !existsSync(path.join(ROOT, 'dist/server.js'))) throw new Error('run `npm run build` first');
  return targets;
}

/** The fake upstream (test/helpers/mock-upstream.ts) on a free port, and its /v1 URL. */
export async function startUpstream(): Promise<{ child: Child; url: string }> {
  const child = await startChild({
    name: 'mock-upstream',
    command: process.execPath,
    args: ['--import', 'tsx', 'test/helpers/mock-upstream.ts'],
    cwd: ROOT,
    env: { PORT: String(await getFreePort()), HOST: '127.0.0.1', MOCK_UPSTREAM_RECORD: '0' },
    ready: { line: /listening on (https?:\/\/\S+)/ },
  });
  return { child, url: (child.readyMatch?.[1] ?? '').replace(/\/+$/, '') };
}

/** A throwaway redis-server for the tollgate-redis target. */
export async function startRedis(): Promise<{ child: Child; url: string }> {
  const port = await getFreePort();
  const child = await startChild({
    name: 'redis-server',
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    cwd: ROOT,
    env: {},
    ready: { line: /Ready to accept connections/ },
  });
  return { child, url: `redis://127.0.0.1:${port}` };
}

/** `count` requests of a scenario (default chat), `concurrency` at a time; returns the non-200 answers. */
export async function driveChat(origin: string, count: number, concurrency: number, clientKey: string, scenarioId = 'chat'): Promise<number> {
  const scenario = SCENARIOS.find((s) => s.id === scenarioId);
  if (!scenario) throw new Error(`no scenario ${scenarioId} (${SCENARIOS.map((s) => s.id).join(', ')})`);
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const headers = { ...scenario.headers, authorization: `Bearer ${clientKey}` };
  let left = count;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (left-- > 0) {
      const res = await pool.request({ method: 'POST', path: scenario.path, headers, body: scenario.body });
      if (res.statusCode !== 200) errors++;
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await pool.close();
  return errors;
}
