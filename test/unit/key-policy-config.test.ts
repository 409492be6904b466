// Key policy fields in the config file (issue 5, point 2): the README's example entry, numbers from
// ${VAR} substitution, errors that name the path, and allow-listed models checked against the
// catalogue when the gateway starts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { ConfigError, configFromObject, parseConfigText, validateConfig } from '../../src/config/load.js';
import { PROJECT_ROOT } from '../helpers/tollgate-process.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('key policy in the config file', () => {
  it('the README’s key entries parse as documented', () => {
    const readme = readFileSync(`${PROJECT_ROOT}/README.md`, 'utf8');
    const yaml = /```yaml\n(keys:\n[\s\S]*?)```/.exec(readme)?.[1] as string;
    const config = validateConfig(parseConfigText(yaml, { SEARCH_APP_KEY: 'tg-search-app-0123456789' }, 'README'), 'README');
    expect(config.keys[1]).toMatchObject({
      id: 'batch-jobs',
      limits: { rpm: 100, models: { 'gpt-4.1-nano': { tpm: 50000 } } },
      models: ['gpt-4.1-nano', 'text-embedding-3-small'],
      budget_usd: { daily: 5, monthly: 100 },
      token_quota: { daily: 20_000_000 },
      expires_at: '2026-12-31T00:00:00Z',
      metadata: { team: 'data', owner: 'ana@example.com' },
    });
  });

  it('budgets, quotas and flags read numbers and booleans from ${VAR}', () => {
    const yaml = 'keys:\n  - id: app\n    key: tg-app-0123456789\n    tier: free\n    budget_usd:\n      daily: ${DAILY:-2.5}\n      total: ${TOTAL}\n    token_quota:\n      monthly: ${TOKENS}\n    disabled: ${OFF:-false}\n';
    const config = validateConfig(parseConfigText(yaml, { TOTAL: 'null', TOKENS: '100000' }, 'f.yaml'), 'f.yaml');
    expect(config.keys[0]).toMatchObject({ budget_usd: { daily: 2.5, total: null }, token_quota: { monthly: 100000 }, disabled: false });
  });

  it.each([
    [{ budget_usd: { daily: -1 } }, 'keys[0].budget_usd.daily'],
    [{ budget_usd: { weekly: 1 } }, 'keys[0].budget_usd'],
    [{ token_quota: { daily: 0 } }, 'keys[0].token_quota.daily'],
    [{ expires_at: '31/12/2026' }, 'keys[0].expires_at'],
    [{ models: [] }, 'keys[0].models'],
    [{ metadata: { team: 1 } }, 'keys[0].metadata.team'],
    [{ limits: { models: { 'gpt-4.1-nano': { batch_queue_tokens: 5 } } } }, 'keys[0].limits.models.gpt-4.1-nano'],
  ])('%j is refused naming %s', (policy, path) => {
    const error = configError(() => configFromObject({ keys: [{ id: 'app', key: 'tg-app-0123456789', tier: 'free', ...(policy as object) }] }));
    expect(error.message).toContain(`  ${path}: `);
  });

  it('an allow-listed model outside the catalogue stops the start, naming the entry (unless unknown models pass through)', async () => {
    const keys = [{ id: 'a', key: 'tg-a-0123456789', tier: 'free' as const }, { id: 'b', key: 'tg-b-0123456789', tier: 'free' as const, models: ['gpt-4.1-nano', 'gpt-9'] }];
    const options = { upstreamUrl: 'http://127.0.0.1:9/v1', upstreamApiKey: undefined, logLevel: 'silent' };
    const refused = await buildApp({ ...options, config: configFromObject({ keys }) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toBe('Invalid config: keys[1].models[1]: the model gpt-9 is not in the catalogue');
    const app = await buildApp({ ...options, config: configFromObject({ keys, models: { unknown: 'pass_through' } }) });
    await app.close();
  });
});
