// What `npm test` needs outside node_modules, found or installed before any test runs, so a
// fresh Debian machine with Node needs nothing else. A tool is looked for in its override
// variable, then on PATH; when missing it is installed with apt-get (as root, or with
// passwordless sudo) and then looked for on PATH and in the package's files (a PATH that leaves
// the package's directory out still finds it). When installing is not possible or not wanted
// (TOLLGATE_TEST_INSTALL=never), one message names the command to run.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface TestTool {
  /** What the tests call it. */
  readonly name: string;
  /** Executable names, first found wins. */
  readonly binaries: readonly string[];
  /** The Debian package that brings it. */
  readonly aptPackage: string;
  /** The variable that names its binary for the tests (set by the global setup). */
  readonly envVar: string;
}

export const TEST_TOOLS: readonly TestTool[] = [
  { name: 'redis-server', binaries: ['redis-server'], aptPackage: 'redis-server', envVar: 'TOLLGATE_TEST_REDIS_BIN' },
  { name: 'prometheus', binaries: ['prometheus'], aptPackage: 'prometheus', envVar: 'TOLLGATE_TEST_PROMETHEUS_BIN' },
  // The console's browser tests drive it headless.
  { name: 'chromium', binaries: ['chromium', 'chromium-browser'], aptPackage: 'chromium', envVar: 'TOLLGATE_TEST_CHROMIUM_BIN' },
];

/** The tests cannot run: the message says what to do, and is all the user needs to see. */
export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
}

type Env = Readonly<Record<string, string | undefined>>;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function onPath(binaries: readonly string[], env: Env): string | undefined {
  const dirs = (env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const binary of binaries) {
    for (const dir of dirs) {
      const candidate = join(dir, binary);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

/** The binary among an installed package's files (`dpkg -L`), wherever PATH points. */
function inPackage(tool: TestTool): string | undefined {
  const listing = spawnSync('dpkg', ['-L', tool.aptPackage], { encoding: 'utf8' });
  if (listing.status !== 0) return undefined;
  const files = listing.stdout.split('\n');
  for (const binary of tool.binaries) {
    const found = files.find((file) => /\/s?bin\//.test(file) && file.endsWith(`/${binary}`) && isExecutable(file));
    if (found) return found;
  }
  return undefined;
}

/** How apt-get may be run here: directly as root, through passwordless sudo, or not at all. */
function aptRunner(env: Env): string[] | undefined {
  if (env.TOLLGATE_TEST_INSTALL === 'never') return undefined;
  if (onPath(['apt-get'], env) === undefined) return undefined;
  if (process.getuid?.() === 0) return [];
  if (onPath(['sudo'], env) === undefined) return undefined;
  return spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore', env: { ...env } }).status === 0 ? ['sudo', '-n'] : undefined;
}

function run(command: readonly string[], env: Env): void {
  const [file, ...args] = command as [string, ...string[]];
  const result = spawnSync(file, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.status !== 0) throw new ProvisionError(`npm test: \`${command.join(' ')}\` failed (exit ${result.status ?? result.signal}).`);
}

function install(runner: readonly string[], packages: readonly string[], env: Env): void {
  process.stderr.write(`npm test: installing ${packages.join(', ')} with apt-get\n`);
  run([...runner, 'apt-get', 'update', '-qq'], env);
  run([...runner, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages], env);
  // Debian's prometheus package starts a service on :9090 where an init system runs; the tests
  // start their own on free ports and need none.
  if (packages.includes('prometheus')) {
    spawnSync('sh', ['-c', `${runner.join(' ')} systemctl disable --now prometheus || ${runner.join(' ')} service prometheus stop`], { stdio: 'ignore' });
  }
}

function manualCommand(packages: readonly string[], env: Env): string {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  const vars = TEST_TOOLS.filter((tool) => packages.includes(tool.aptPackage)).map((tool) => tool.envVar);
  const command = `${sudo}apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  const why = env.TOLLGATE_TEST_INSTALL === 'never' ? 'TOLLGATE_TEST_INSTALL=never' : 'not root, no passwordless sudo, or no apt-get';
  return `npm test needs ${packages.join(', ')}, not found on PATH, and will not install them here (${why}). Run: ${command}  (or name the binaries in ${vars.join(', ')})`;
}

/**
 * Finds every test tool, installing the missing ones when permitted, and returns each tool's
 * binary by its variable name. Throws a ProvisionError naming the command otherwise.
 */
export function provisionTestTools(env: Env = process.env, tools: readonly TestTool[] = TEST_TOOLS): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: TestTool[] = [];
  for (const tool of tools) {
    const override = env[tool.envVar];
    const path = override !== undefined && override !== '' ? override : onPath(tool.binaries, env);
    if (path === undefined) missing.push(tool);
    else found[tool.envVar] = path;
  }
  if (missing.length === 0) return found;
  const packages = missing.map((tool) => tool.aptPackage);
  const runner = aptRunner(env);
  if (runner === undefined) throw new ProvisionError(manualCommand(packages, env));
  install(runner, packages, env);
  for (const tool of missing) {
    const path = onPath(tool.binaries, env) ?? inPackage(tool);
    if (path === undefined) throw new ProvisionError(`npm test: apt-get installed ${tool.aptPackage}, but no ${tool.binaries.join(' or ')} binary was found in it.`);
    found[tool.envVar] = path;
  }
  return found;
}
