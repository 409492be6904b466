import Fastify, { LogController } from 'fastify';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loggerOptions, withLazyChildren } from '../../src/logging.js';

/** A pino root as app.ts builds it, writing into an array, with every `child` call counted. */
function countingRoot(level = 'info'): { root: Logger; lines: Record<string, unknown>[]; children: () => number } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const root = pino(loggerOptions(level), sink);
  let children = 0;
  const child = root.child.bind(root);
  // pino's children inherit from their parent (Object.create): this counts theirs too.
  Object.defineProperty(root, 'child', {
    value(this: Logger, ...args: Parameters<Logger['child']>) {
      children++;
      return this === root ? child(...args) : Object.getPrototypeOf(root).child.apply(this, args);
    },
  });
  return { root, lines, children: () => children };
}

const apps: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function appWith(root: Logger) {
  const app = Fastify({ loggerInstance: withLazyChildren(root), logController: new LogController({ disableRequestLogging: true }) });
  apps.push(app);
  app.get('/quiet', async () => ({ ok: true }));
  app.get('/loud', async (request) => {
    request.log.info({ authorization: 'Bearer sk-secret', route: 'loud' }, 'hello');
    request.log.debug('not at info');
    return { ok: true };
  });
  app.get('/nested', async (request) => {
    request.log.child({ part: 'inner' }).warn('from a child');
    return { ok: true };
  });
  await app.ready();
  return app;
}

describe('lazy request loggers', () => {
  it('builds no pino child for a request that does not log (Fastify wraps the instance in a child of its own)', async () => {
    const { root, lines, children } = countingRoot();
    const app = await appWith(root);
    const before = children();
    for (let i = 0; i < 5; i++) expect((await app.inject({ method: 'GET', url: '/quiet' })).statusCode).toBe(200);
    expect(children() - before).toBe(0);
    expect(lines).toEqual([]);
  });

  it('a request that logs writes its line with the request id, redacted, at the root level', async () => {
    const { root, lines } = countingRoot();
    const app = await appWith(root);
    const res = await app.inject({ method: 'GET', url: '/loud' });
    expect(res.statusCode).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, service: 'tollgate', reqId: 'req-1', route: 'loud', msg: 'hello', authorization: '[Redacted]' });
  });

  it("children of a request's logger keep every binding and build nothing until they log", async () => {
    const { root, lines, children } = countingRoot();
    const app = await appWith(root);
    const before = children();
    expect((await app.inject({ method: 'GET', url: '/nested' })).statusCode).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, reqId: 'req-1', part: 'inner', msg: 'from a child' });
    // Fastify's own, the request's and the inner one: built because a line was written.
    expect(children() - before).toBe(3);
  });

  it('a level disabled at the root builds nothing; a child with a level of its own follows it', async () => {
    const { root, lines, children } = countingRoot('warn');
    const lazy = withLazyChildren(root);
    const request = lazy.child({ reqId: 'r1' }, {});
    request.info('dropped');
    expect(children()).toBe(0);
    const verbose = request.child({ part: 'debugging' }, { level: 'debug' });
    verbose.debug('kept');
    expect(lines).toEqual([expect.objectContaining({ level: 20, reqId: 'r1', part: 'debugging', msg: 'kept' })]);
  });
});
