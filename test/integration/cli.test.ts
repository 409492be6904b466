// The CLI end to end (issue 5, point 6): `tollgate keys …` against a running gateway, reading
// TOLLGATE_URL and TOLLGATE_ADMIN_TOKEN from its environment. The process entry is spawned for real
// where it matters (output, exit codes); the other commands run the same code in process, which
// keeps the suite fast (each spawn compiles TypeScript).
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { useGateway } from '../helpers/gateway.js';
import { PROJECT_ROOT } from '../helpers/tollgate-process.js';
import { runCli } from '../../src/cli/run.js';

const ADMIN_TOKEN = 'tg-admin-cli-0123456789abcdef';

const fx = useGateway({ adminToken: ADMIN_TOKEN, resetEachTest: false });

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real process: `node src/cli/tollgate.ts …`. */
function spawned(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const base: Record<string, string | undefined> = { ...process.env, TOLLGATE_URL: fx.gateway.origin, TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/tollgate.ts', ...args], { cwd: PROJECT_ROOT, env: base as NodeJS.ProcessEnv }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The same commands in process (runCli is what the entry calls). */
async function tollgate(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    env: { TOLLGATE_URL: fx.gateway.origin, TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
  });
  return { code, stdout, stderr };
}

describe('tollgate keys', () => {
  it('create prints the key and its secret once; the secret works; --json gives the API answer', async () => {
    const table = await spawned(['keys', 'create', 'cli-app', '--tier', 'tier-2', '--budget-daily', '2.5', '--tokens-monthly', '500000', '--models', 'gpt-4.1-nano', '--rpm', '100', '--team', 'search', '--owner', 'ana']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^id\s+cli-app$/m);
    expect(table.stdout).toMatch(/^tier\s+tier-2$/m);
    expect(table.stdout).toMatch(/^budget_usd\s+d:\$2\.5$/m);
    expect(table.stdout).toMatch(/^models\s+gpt-4\.1-nano$/m);
    expect(table.stdout).toMatch(/^team\s+search$/m);
    const secret = /^secret: (tg-\S+)$/m.exec(table.stdout)?.[1] as string;
    expect(secret).toMatch(/^tg-/);
    expect(table.stdout).toContain('shown this once');
    const completion = await fx.gateway.client({ apiKey: secret }).chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.object).toBe('chat.completion');

    const json = await spawned(['keys', 'create', 'cli-json', '--tier', 'free', '--json']);
    expect(json.code).toBe(0);
    const created = JSON.parse(json.stdout) as { id: string; key: string; tier: string };
    expect(created).toMatchObject({ id: 'cli-json', tier: 'free' });
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${created.key}` } })).status).toBe(200);
  });

  it('list prints a table of every key; show prints one; usage prints the day, month and total', async () => {
    await tollgate(['keys', 'create', 'cli-listed', '--tier', 'tier-1', '--budget-total', '10', '--team', 'ops']);
    const [list, show, usage] = await Promise.all([spawned(['keys', 'list']), tollgate(['keys', 'show', 'cli-listed']), tollgate(['keys', 'usage', 'test-key'])]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+SOURCE\s+STATUS\s+TIER\s+BUDGET\s+MODELS\s+TEAM\s+KEY$/);
    expect(lines.find((l) => l.startsWith('cli-listed '))).toMatch(/^cli-listed\s+api\s+active\s+tier-1\s+t:\$10\s+all\s+ops\s+tg-…\S{4}$/);
    expect(lines.find((l) => l.startsWith('test-key '))).toMatch(/^test-key\s+config\s+active\s+tier-1\s+-\s+all\s+-\s+-$/);
    expect(show.stdout).toMatch(/^budget_usd\s+t:\$10$/m);
    expect(show.stdout).not.toContain('secret:');
    expect(usage.code).toBe(0);
    expect(usage.stdout).toMatch(/^WINDOW\s+PERIOD\s+REQUESTS\s+INPUT\s+CACHED\s+OUTPUT\s+COST\s+RESERVED$/m);
    expect(usage.stdout).toMatch(/^today\s+\d{4}-\d\d-\d\d\s+\d+/m);
    expect(usage.stdout).toMatch(/^gpt-4\.1-nano\s+\d+\/500\s+\d+\/200000$/m);
  });

  it('usage counts what the key did', async () => {
    const created = JSON.parse((await tollgate(['keys', 'create', 'cli-usage', '--tier', 'tier-1', '--budget-daily', '1', '--json'])).stdout) as { key: string };
    await fx.gateway.client({ apiKey: created.key }).chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }, { headers: { 'x-fake-prompt-tokens': '1000' } });
    const usage = JSON.parse((await tollgate(['keys', 'usage', 'cli-usage', '--json'])).stdout) as { usage: { today: { requests: number; input_tokens: number } }; budget_usd: { daily: { limit: number } } };
    expect(usage.usage.today).toMatchObject({ requests: 1, input_tokens: 1000 });
    expect(usage.budget_usd.daily.limit).toBe(1);
    const text = await tollgate(['keys', 'usage', 'cli-usage']);
    expect(text.stdout).toMatch(/^today\s+\d{4}-\d\d-\d\d\s+1\s+1000\s+0\s+5\s+\$0\.000102\s+\$0\.000000$/m);
    expect(text.stdout).toMatch(/^budget daily\s+\$1\.000000\s+\$0\.000102\s+\$0\.999898\s+\d{4}/m);
  });

  it('update, rotate and revoke', async () => {
    const created = JSON.parse((await tollgate(['keys', 'create', 'cli-life', '--tier', 'tier-1', '--models', 'gpt-4.1-nano', '--json'])).stdout) as { key: string };
    const updated = JSON.parse((await tollgate(['keys', 'update', 'cli-life', '--tier', 'tier-3', '--clear', 'models', '--disabled', '--json'])).stdout) as Record<string, unknown>;
    expect(updated).toMatchObject({ tier: 'tier-3', disabled: true, status: 'disabled' });
    expect(updated.models).toBeUndefined();
    await tollgate(['keys', 'update', 'cli-life', '--enabled']);
    const rotated = await tollgate(['keys', 'rotate', 'cli-life']);
    const fresh = /^secret: (tg-\S+)$/m.exec(rotated.stdout)?.[1] as string;
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${created.key}` } })).status).toBe(401);
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
    const revoked = await tollgate(['keys', 'revoke', 'cli-life']);
    expect(revoked.stdout).toMatch(/^status\s+revoked$/m);
    expect((await fetch(`${fx.gateway.url}/models`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(401);
  });

  it('update changes only the flags given: --budget-monthly keeps the daily budget; none / default remove one (issue 14, item 18)', async () => {
    const json = async (args: string[]): Promise<Record<string, unknown>> => {
      const run = await tollgate([...args, '--json']);
      expect(run.code).toBe(0);
      return JSON.parse(run.stdout) as Record<string, unknown>;
    };
    await json(['keys', 'create', 'cli-partial', '--tier', 'tier-1', '--budget-daily', '1', '--rpm', '50', '--tpm', '9000', '--tokens-daily', '1000', '--tokens-monthly', '5000', '--policy', '{"limits":{"models":{"gpt-4.1-nano":{"rpm":5}}}}']);
    expect((await json(['keys', 'update', 'cli-partial', '--budget-monthly', '100'])).budget_usd).toEqual({ daily: 1, monthly: 100 });
    expect((await json(['keys', 'update', 'cli-partial', '--budget-daily', 'none'])).budget_usd).toEqual({ monthly: 100 });
    expect((await json(['keys', 'update', 'cli-partial', '--tokens-monthly', 'none'])).token_quota).toEqual({ daily: 1000 });
    expect((await json(['keys', 'update', 'cli-partial', '--rpm', '60'])).limits).toEqual({ rpm: 60, tpm: 9000, models: { 'gpt-4.1-nano': { rpm: 5 } } });
    expect((await json(['keys', 'update', 'cli-partial', '--tpm', 'default', '--rpd', 'none'])).limits).toEqual({ rpm: 60, rpd: null, models: { 'gpt-4.1-nano': { rpm: 5 } } });
    expect((await json(['keys', 'update', 'cli-partial', '--policy', '{"limits":{"models":{"gpt-4.1-nano":null}}}'])).limits).toEqual({ rpm: 60, rpd: null });
  });

  it('errors: the API’s message and exit 1; usage mistakes and a missing token exit 2', async () => {
    const unknown = await spawned(['keys', 'show', 'no-such-key']);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toBe('tollgate: 404: No key with id `no-such-key`.\n');
    const invalid = await tollgate(['keys', 'create', 'bad-budget', '--tier', 'free', '--budget-daily', 'lots']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain("400: Invalid 'budget_usd.daily'");
    const wrongToken = await tollgate(['keys', 'list'], { TOLLGATE_ADMIN_TOKEN: 'wrong' });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toContain('401');
    expect((await spawned(['keys', 'list'], { TOLLGATE_ADMIN_TOKEN: undefined })).code).toBe(2);
    expect((await tollgate(['keys', 'show'])).code).toBe(2);
    expect((await tollgate(['keys', 'frobnicate', 'x'])).code).toBe(2);
    const help = await tollgate(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tollgate keys <command>');
  });
});
