// The CLI installs cleanly (issue 18): `npm pack` makes a package whose `tollgate` binary works
// installed globally into a fresh prefix, against a running gateway. Uses the built dist/ (.ci/run
// builds before testing; built here when absent) and npm's cache, with a registry on 127.0.0.1
// that knows the locked versions (test/helpers/lockfile-registry.ts).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, UPSTREAM_KEY, type TestGateway } from '../helpers/gateway.js';
import { type LockfileRegistry, startLockfileRegistry } from '../helpers/lockfile-registry.js';
import { PROJECT_ROOT } from '../helpers/tollgate-process.js';

const run = promisify(execFile);
const ADMIN_TOKEN = 'tg-admin-pack-0123456789abcdef';

/** Every Lua script under src/, as the package must ship it under dist/. */
function luaFiles(dir = join(PROJECT_ROOT, 'src')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return luaFiles(path);
    return entry.name.endsWith('.lua') ? [relative(join(PROJECT_ROOT, 'src'), path)] : [];
  });
}

describe('npm pack + global install', () => {
  let upstream: FakeUpstream;
  let gateway: TestGateway;
  let registry: LockfileRegistry;
  const work = mkdtempSync(join(tmpdir(), 'tollgate-pack-'));

  beforeAll(async () => {
    if (!existsSync(join(PROJECT_ROOT, 'dist/cli/tollgate.js'))) execFileSync('npm', ['run', 'build'], { cwd: PROJECT_ROOT, stdio: 'ignore' });
    registry = await startLockfileRegistry(join(PROJECT_ROOT, 'package-lock.json'));
    upstream = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
    gateway = await startGateway({ upstreamUrl: upstream.url, adminToken: ADMIN_TOKEN });
  }, 180_000);
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await registry?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('installs a `tollgate` binary that lists the keys of a running gateway', async () => {
    // What `npm pack` runs, less `prepare` (the build: dist/ is built already). prepack ships the
    // lockfile as npm-shrinkwrap.json, so an install gets the tested dependency tree.
    await run('npm', ['run', 'prepack'], { cwd: PROJECT_ROOT });
    const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: PROJECT_ROOT }).finally(() =>
      run('npm', ['run', 'postpack'], { cwd: PROJECT_ROOT }),
    );
    const [info] = JSON.parse(packed.stdout) as { name: string; filename: string; files: { path: string }[] }[];
    expect(info?.name).toBe('@tollgate/gateway');
    const shipped = new Set(info?.files.map((file) => file.path));
    expect(shipped).toContain('dist/server.js');
    expect(shipped).toContain('dist/cli/tollgate.js');
    expect(shipped).toContain('npm-shrinkwrap.json');
    for (const lua of luaFiles()) expect(shipped).toContain(`dist/${lua}`);
    expect([...shipped].filter((path) => path.startsWith('src/') || path.startsWith('test/'))).toEqual([]);

    const prefix = join(work, 'prefix');
    const tarball = join(work, info?.filename ?? '');
    await run('npm', ['install', '--global', '--prefix', prefix, '--registry', registry.url, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: work });

    const env = { ...process.env, TOLLGATE_URL: gateway.origin, TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` };
    const listed = await run('tollgate', ['keys', 'list'], { cwd: work, env });
    expect(listed.stderr).toBe('');
    expect(listed.stdout).toContain('test-key');
    expect(listed.stdout).toMatch(/config/);
  }, 120_000);
});
