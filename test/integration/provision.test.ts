// `npm test` on a fresh machine: the global setup finds its tools or names the command that
// installs them. Installing itself is shown by .ci/run, which runs the suite with prometheus
// hidden from PATH (a test here may not reach a package registry).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/** A directory holding every command of PATH but `hidden`. */
function pathWithout(hidden: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-path-'));
  for (const from of (process.env.PATH ?? '').split(delimiter)) {
    if (from === '' || !existsSync(from)) continue;
    for (const name of readdirSync(from)) {
      if (name !== hidden && !existsSync(join(dir, name))) symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

function provision(env: Record<string, string | undefined>) {
  // Without the setup's answers, as on a fresh shell.
  const clean = Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('TOLLGATE_TEST_') || name === 'TOLLGATE_TEST_INSTALL'));
  if (env.OVERRIDE !== undefined) clean.TOLLGATE_TEST_PROMETHEUS_BIN = env.OVERRIDE;
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/provision-test-tools.ts'], { env: clean, encoding: 'utf8' });
}

describe('test tool provisioning', () => {
  const hiddenPath = pathWithout('prometheus');
  afterAll(() => rmSync(hiddenPath, { recursive: true, force: true }));

  it('finds every tool on PATH and names it', () => {
    // The tools' directories as the global setup found them (CI hides prometheus from PATH).
    const found = ['REDIS', 'PROMETHEUS', 'CHROMIUM'].map((tool) => process.env[`TOLLGATE_TEST_${tool}_BIN`]).filter((bin): bin is string => bin !== undefined);
    const run = provision({ ...process.env, PATH: [...found.map((bin) => dirname(bin)), process.env.PATH].join(delimiter) });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.map((line) => line.split('=')[0])).toEqual(['TOLLGATE_TEST_REDIS_BIN', 'TOLLGATE_TEST_PROMETHEUS_BIN', 'TOLLGATE_TEST_CHROMIUM_BIN']);
    expect(lines[1]).toMatch(/^TOLLGATE_TEST_PROMETHEUS_BIN=\/.*\/prometheus$/);
  });

  it('without prometheus on PATH and no permission to install, stops with one message naming the command', () => {
    const run = provision({ ...process.env, PATH: hiddenPath, TOLLGATE_TEST_INSTALL: 'never' });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    const message = run.stderr.trim();
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain('npm test needs prometheus, not found on PATH');
    expect(message).toContain('apt-get install -y --no-install-recommends prometheus');
    expect(message).toContain('TOLLGATE_TEST_PROMETHEUS_BIN');
  });

  it('an override variable stands in for a tool missing from PATH (the global setup sets them for every test)', () => {
    const prometheus = process.env.TOLLGATE_TEST_PROMETHEUS_BIN;
    expect(prometheus).toMatch(/prometheus$/);
    const run = provision({ ...process.env, PATH: hiddenPath, TOLLGATE_TEST_INSTALL: 'never', OVERRIDE: prometheus });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`TOLLGATE_TEST_PROMETHEUS_BIN=${prometheus}`);
  });
});
