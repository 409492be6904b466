import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { openRealtime } from '../helpers/realtime-client.js';
import { configDir, freshGet, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

// The real process entry under SIGTERM with a realtime session open: the session is told to go
// (1001) at the end of the grace period, its running response is settled and logged (even when
// the upstream does not answer the close handshake), the process exits 0.

const UPSTREAM_KEY = 'sk-upstream-rt-lifecycle-0123456789abcdef';
const CLIENT_KEY = 'tg-rt-lifecycle-client-key-0123456789';

let upstream: FakeUpstream;
const configs = configDir();
const procs: TollgateProcess[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
});
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill()));
});
afterAll(async () => {
  await upstream?.close();
  configs.cleanup();
});

const logLines = (proc: TollgateProcess): Record<string, unknown>[] =>
  proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('SIGTERM with a realtime session open', () => {
  it('refuses new upgrades at once, closes the session with 1001 after the grace period, settles its response once and exits 0', { timeout: 90_000 }, async () => {
    const config = configs.write('rt-sigterm.yaml', `server:\n  shutdown_grace_ms: 1500\nkeys:\n  - { id: rt-life, key: "${CLIENT_KEY}", tier: tier-1 }\n`);
    const proc = await startTollgate({ TOLLGATE_CONFIG: config, TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY });
    procs.push(proc);
    const url = `ws://127.0.0.1:${proc.port}/v1/realtime?model=gpt-realtime`;
    const rt = await openRealtime(url, undefined, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    await rt.next('session.created');
    // A response that outlasts the grace period is running when the signal comes.
    rt.send({ type: 'response.create', response: { metadata: { fake_deltas: '100000', fake_delay_ms: '20' } } });
    await rt.next('response.output_text.delta');
    const upstreamSession = upstream.realtime.sessions.at(-1);
    if (!upstreamSession) throw new Error('no upstream session');
    // The upstream stops reading: it will not answer the gateway's close frame, so the session
    // ends only when the gateway cuts it; the process must still settle and log it before exiting.
    upstreamSession.socket.pause();

    proc.child.kill('SIGTERM');
    await proc.waitForOutput('draining');
    // A new session is not opened: refused by the closed listener, or 503 before the upgrade.
    const probe = await new Promise<number | string>((resolve) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.once('open', () => {
        resolve('opened');
        ws.terminate();
      });
      ws.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect([503, 'ECONNREFUSED', 'ECONNRESET']).toContain(probe);
    const ready = await freshGet(`${proc.origin}/readyz`, 3000).then(
      (r) => r.status,
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );
    expect([503, 'ECONNREFUSED', 'ECONNRESET']).toContain(ready);

    expect(await rt.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(await proc.exited).toBe(0);
    upstreamSession.socket.resume();
    await upstreamSession.closed;

    const lines = logLines(proc);
    expect(lines.filter((l) => l.msg === 'realtime response')).toEqual([expect.objectContaining({ tokens_source: 'estimated' })]);
    expect(lines.filter((l) => l.msg === 'realtime session')).toEqual([expect.objectContaining({ close_by: 'gateway', close_code: 1001, responses: 1 })]);
    expect(lines.some((l) => l.msg === 'stopped')).toBe(true);
  });
});
