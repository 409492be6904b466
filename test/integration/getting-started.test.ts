// The code blocks of docs/getting-started.md marked `runnable` work as written: each is run
// against the real gateway process (config/tollgate.yaml, its demo key) in front of the fake
// upstream, with the page's address (127.0.0.1:8080) replaced by the test gateway's.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { PROJECT_ROOT, startTollgate, type TollgateProcess } from '../helpers/tollgate-process.js';

const run = promisify(execFile);
const UPSTREAM_KEY = 'sk-getting-started-upstream-key';

interface Block {
  readonly lang: string;
  readonly code: string;
}

/** Fenced blocks whose info string is `<lang> runnable`. */
function runnableBlocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(\w+) runnable\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1] ?? '', code: m[2] ?? '' }));
}

describe('docs/getting-started.md', () => {
  const blocks = runnableBlocks(readFileSync(`${PROJECT_ROOT}/docs/getting-started.md`, 'utf8'));
  let upstream: FakeUpstream;
  let gateway: TollgateProcess;

  beforeAll(async () => {
    upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
    gateway = await startTollgate({ TOLLGATE_CONFIG: 'config/tollgate.yaml', TOLLGATE_UPSTREAM_URL: upstream.url, OPENAI_API_KEY: UPSTREAM_KEY });
  });
  afterAll(async () => {
    await gateway?.kill();
    await upstream?.close();
  });

  it('has runnable blocks in shell and JavaScript', () => {
    expect(blocks.map((block) => block.lang)).toEqual(['sh', 'sh', 'sh', 'js']);
  });

  it.each(blocks.map((block, i) => [i + 1, block] as const))('block %i runs and exits 0', async (_n, block) => {
    const code = block.code.replaceAll('http://127.0.0.1:8080', gateway.origin);
    const env = { ...process.env, TOLLGATE_DEMO_KEY: undefined };
    const result =
      block.lang === 'sh'
        ? await run('bash', ['-euo', 'pipefail', '-c', code], { cwd: PROJECT_ROOT, env })
        : await run(process.execPath, ['--input-type=module', '-e', code], { cwd: PROJECT_ROOT, env });
    expect(result.stdout.length).toBeGreaterThan(0);
  });
});
