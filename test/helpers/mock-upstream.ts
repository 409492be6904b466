// CLI: runs the fake OpenAI upstream as a standalone process (`npm run mock-upstream`).
//   PORT (default 4010), HOST (default 127.0.0.1),
//   MOCK_UPSTREAM_API_KEY (if set, required as `Authorization: Bearer <key>`),
//   MOCK_UPSTREAM_RECORD=0 to disable request recording (the benchmark does this).
// Prints exactly one line, `mock-upstream listening on http://HOST:PORT/v1`, once ready.
import { startFakeUpstream } from './fake-upstream.js';

const port = Number.parseInt(process.env.PORT ?? '4010', 10);
const host = process.env.HOST || '127.0.0.1';
const apiKey = process.env.MOCK_UPSTREAM_API_KEY || undefined;
const record = process.env.MOCK_UPSTREAM_RECORD !== '0' && process.env.MOCK_UPSTREAM_RECORD !== 'false';

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`mock-upstream: invalid PORT ${JSON.stringify(process.env.PORT)}\n`);
  process.exit(2);
}

try {
  const fake = await startFakeUpstream({ port, host, apiKey, record });
  process.stdout.write(`mock-upstream listening on ${fake.url}\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    void fake.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
} catch (err) {
  process.stderr.write(`mock-upstream: failed to start on ${host}:${port}: ${(err as Error).message}\n`);
  process.exit(1);
}
