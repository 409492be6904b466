import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { DEFAULT_TIERS, TIER_NAMES } from '../../src/config/defaults.js';
import { ConfigError, configFromObject, loadConfigFile, parseConfigText, validateConfig } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

async function asyncConfigError(promise: Promise<unknown>): Promise<ConfigError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

const KEY_YAML = (key: string, tier = 'tier-1') => `keys:\n  - id: app\n    key: ${key}\n    tier: ${tier}\n`;

describe('environment substitution', () => {
  it('replaces ${VAR} inside a string', () => {
    const raw = parseConfigText('upstream:\n  organization: org-${ORG}-x\n', { ORG: 'acme' }, 'f.yaml');
    expect(raw).toEqual({ upstream: { organization: 'org-acme-x' } });
  });

  it('uses ${VAR:-default} when VAR is unset or empty, and VAR when set', () => {
    const text = 'upstream:\n  organization: ${ORG:-fallback-org}\n';
    expect(parseConfigText(text, {}, 'f.yaml')).toEqual({ upstream: { organization: 'fallback-org' } });
    expect(parseConfigText(text, { ORG: '' }, 'f.yaml')).toEqual({ upstream: { organization: 'fallback-org' } });
    expect(parseConfigText(text, { ORG: 'real' }, 'f.yaml')).toEqual({ upstream: { organization: 'real' } });
  });

  it('$${VAR} is a literal ${VAR}', () => {
    const raw = parseConfigText('upstream:\n  organization: "a$${ORG}b"\n', { ORG: 'acme' }, 'f.yaml');
    expect(raw).toEqual({ upstream: { organization: 'a${ORG}b' } });
  });

  it('a scalar that is one whole reference becomes a number where the schema wants one', () => {
    const text = 'server:\n  shutdown_grace_ms: ${X}\n  body_limit_bytes: ${LIMIT:-1048576}\ntiers:\n  tier-1:\n    rpm: ${RPM}\n    rpd: ${RPD:-null}\n';
    const config = validateConfig(parseConfigText(text, { X: '8080', RPM: '42' }, 'f.yaml'), 'f.yaml');
    expect(config.server.shutdown_grace_ms).toBe(8080);
    expect(config.server.body_limit_bytes).toBe(1_048_576);
    expect(config.tiers['tier-1']).toEqual({ rpm: 42, rpd: null });
    const bad = configError(() => validateConfig(parseConfigText(text, { X: 'soon', RPM: '1' }, 'f.yaml'), 'f.yaml'));
    expect(bad.message).toContain('server.shutdown_grace_ms');
  });

  it('a numeric or boolean-looking secret stays a string', () => {
    for (const secret of ['12345678901', '0x1234abcd', 'true-ish-1', '1e10000000']) {
      const config = validateConfig(parseConfigText(KEY_YAML('${SECRET}'), { SECRET: secret }, 'f.yaml'), 'f.yaml');
      expect(config.keys[0]?.key).toBe(secret);
    }
  });

  it('a secret containing YAML syntax survives intact (whole-scalar reference)', () => {
    const secret = 'a: b # c';
    const config = validateConfig(parseConfigText(KEY_YAML('${SECRET}'), { SECRET: secret }, 'f.yaml'), 'f.yaml');
    expect(config.keys[0]?.key).toBe(secret);
  });

  it('a secret containing YAML syntax survives intact (quoted whole-scalar reference)', () => {
    for (const secret of ['a: b # c', '[x, y] & *z', '- item {k: v}']) {
      const raw = parseConfigText(KEY_YAML('"${SECRET}"'), { SECRET: secret }, 'f.yaml') as { keys: { key: unknown }[] };
      expect(raw.keys[0]?.key).toBe(secret);
    }
  });

  it('a secret containing YAML syntax survives intact (embedded reference)', () => {
    const raw = parseConfigText(KEY_YAML('tg-${SECRET}'), { SECRET: 'a: b # c\nd: e' }, 'f.yaml') as { keys: { key: unknown }[] };
    expect(raw.keys[0]?.key).toBe('tg-a: b # c\nd: e');
  });

  it('a missing variable is a ConfigError naming the variable and the path', () => {
    const err = configError(() => parseConfigText(KEY_YAML('${APP_KEY}'), {}, '/etc/tollgate.yaml'));
    expect(err.message).toContain('APP_KEY');
    expect(err.message).toContain('keys[0].key');
    expect(err.message).toContain('/etc/tollgate.yaml');
  });

  it('a missing variable deeper in a list names the right index', () => {
    const text = 'keys:\n  - id: a\n    key: ${A_KEY}\n    tier: free\n  - id: b\n    key: ${B_KEY}\n    tier: free\n';
    const err = configError(() => parseConfigText(text, { A_KEY: 'aaaaaaaaaaaa' }, 'f.yaml'));
    expect(err.message).toContain('B_KEY');
    expect(err.message).toContain('keys[1].key');
  });
});

describe('validation', () => {
  const ok = { id: 'a', key: 'secret-aaaa-1111', tier: 'free' };

  it('a bad tier names keys[1].tier and the problem', () => {
    const err = configError(() => validateConfig({ keys: [ok, { id: 'b', key: 'secret-bbbb-2222', tier: 'tier-9' }] }, 'cfg.yaml'));
    expect(err.message).toContain('cfg.yaml');
    expect(err.message).toMatch(/keys\[1\]\.tier: .*(tier-1|free)/);
  });

  it('both key and key_sha256 is rejected at the key entry', () => {
    const err = configError(() =>
      validateConfig({ keys: [{ id: 'a', key: 'secret-aaaa-1111', key_sha256: 'a'.repeat(64), tier: 'free' }] }, 'cfg.yaml'),
    );
    expect(err.message).toMatch(/keys\[0\].*exactly one of `key` or `key_sha256`/);
  });

  it('neither key nor key_sha256 is rejected too', () => {
    const err = configError(() => validateConfig({ keys: [{ id: 'a', tier: 'free' }] }, 'cfg.yaml'));
    expect(err.message).toMatch(/keys\[0\].*exactly one of/);
  });

  it('an unknown field is rejected, naming it and where it is', () => {
    const err = configError(() => validateConfig({ keys: [{ ...ok, teir: 'free' }] }, 'cfg.yaml'));
    expect(err.message).toContain('keys[0]');
    expect(err.message).toContain('teir');
    const top = configError(() => validateConfig({ sever: {} }, 'cfg.yaml'));
    expect(top.message).toContain('sever');
  });

  it('a malformed key_sha256 and a wrongly typed number are named', () => {
    const err = configError(() => validateConfig({ keys: [{ id: 'a', key_sha256: 'xyz', tier: 'free' }] }, 'cfg.yaml'));
    expect(err.message).toContain('keys[0].key_sha256');
    const num = configError(() => validateConfig({ server: { shutdown_grace_ms: 'soon' } }, 'cfg.yaml'));
    expect(num.message).toContain('server.shutdown_grace_ms');
  });

  it('loadConfigFile: invalid file → error with the file path and the config path', async () => {
    const path = file('bad.yaml', KEY_YAML('plain-secret-123', 'gold'));
    const err = await asyncConfigError(loadConfigFile(path, {}));
    expect(err.message).toContain(path);
    expect(err.message).toContain('keys[0].tier');
  });

  it('loadConfigFile: missing file and YAML syntax errors are ConfigErrors', async () => {
    const missing = join(dir, 'nope.yaml');
    expect((await asyncConfigError(loadConfigFile(missing, {}))).message).toContain(missing);
    const broken = file('broken.yaml', 'keys: [\n  - id: a\n');
    expect((await asyncConfigError(loadConfigFile(broken, {}))).message).toContain(broken);
  });

  it('loadConfigFile: a valid file with substitution loads', async () => {
    const path = file('good.yaml', `${KEY_YAML('${APP_KEY}')}server:\n  shutdown_grace_ms: \${GRACE:-250}\n`);
    const config = await loadConfigFile(path, { APP_KEY: 'tg-app-secret-xyz' });
    expect(config.keys).toEqual([{ id: 'app', key: 'tg-app-secret-xyz', tier: 'tier-1' }]);
    expect(config.server.shutdown_grace_ms).toBe(250);
  });
});

describe('defaults', () => {
  const config = configFromObject({});
  const catalogue = buildCatalogue(config);

  it('an empty config validates with defaults', () => {
    expect(config.keys).toEqual([]);
    expect(config.models.unknown).toBe('reject');
    expect(config.estimation.chars_per_token).toBe(4);
    expect(config.server.shutdown_grace_ms).toBeGreaterThan(0);
    expect(config.server.body_limit_bytes).toBeGreaterThan(1_047_576 * 4);
  });

  it('gpt-4.1-nano: context, max output and prices in integer nano-dollars per 1M tokens', () => {
    const nano = catalogue.resolve('gpt-4.1-nano');
    expect(nano).toEqual({
      name: 'gpt-4.1-nano',
      contextWindow: 1_047_576,
      maxOutputTokens: 32_768,
      routeTo: undefined,
      prices: { input: 100_000_000, cachedInput: 25_000_000, output: 400_000_000, batchInput: 50_000_000, batchOutput: 200_000_000, toolCalls: { webSearch: 10_000_000, fileSearch: 2_500_000 } },
    });
    const { toolCalls, ...perToken } = nano?.prices ?? {};
    expect([...Object.values(perToken), ...Object.values(toolCalls ?? {})].filter((value) => !Number.isInteger(value))).toEqual([]);
  });

  it('the snapshot alias resolves to the very same ModelInfo', () => {
    expect(catalogue.resolve('gpt-4.1-nano-2025-04-14')).toBe(catalogue.resolve('gpt-4.1-nano'));
    expect(catalogue.resolve('gpt-4.1-nano-2099-01-01')).toBeUndefined();
  });

  it('the tier table matches product.md exactly (all 6 tiers)', () => {
    const expected = {
      free: { rpm: 3, rpd: 200, tpm: 40_000, batch_queue_tokens: null },
      'tier-1': { rpm: 500, rpd: 10_000, tpm: 200_000, batch_queue_tokens: 2_000_000 },
      'tier-2': { rpm: 5_000, rpd: null, tpm: 2_000_000, batch_queue_tokens: 20_000_000 },
      'tier-3': { rpm: 5_000, rpd: null, tpm: 4_000_000, batch_queue_tokens: 40_000_000 },
      'tier-4': { rpm: 10_000, rpd: null, tpm: 10_000_000, batch_queue_tokens: 1_000_000_000 },
      'tier-5': { rpm: 30_000, rpd: null, tpm: 150_000_000, batch_queue_tokens: 15_000_000_000 },
    };
    expect([...TIER_NAMES]).toEqual(Object.keys(expected));
    expect(DEFAULT_TIERS).toEqual(expected);
    for (const tier of TIER_NAMES) expect(catalogue.tierLimits(tier)).toEqual(expected[tier]);
  });

  it('an operator tier override merges over the default figures', () => {
    const c = buildCatalogue(configFromObject({ tiers: { 'tier-1': { rpm: 50 } } }));
    expect(c.tierLimits('tier-1')).toEqual({ rpm: 50, rpd: 10_000, tpm: 200_000, batch_queue_tokens: 2_000_000 });
    expect(c.tierLimits('free')).toEqual(DEFAULT_TIERS.free);
  });
});

describe('buildCatalogue with operator entries', () => {
  it('adds a model and overrides a default price (other defaults kept)', () => {
    const c = buildCatalogue(
      configFromObject({
        models: {
          catalogue: [
            { name: 'gpt-5-nano', aliases: ['gpt-5-nano-2025-08-07'], context_window: 400_000, max_output_tokens: 128_000, price_per_1m: { input: 0.05, cached_input: 0.005, output: 0.4 } },
            { name: 'gpt-4.1-nano', price_per_1m: { input: 0.2, cached_input: 0.05, output: 0.8, batch_input: 0.1, batch_output: 0.4 } },
          ],
        },
      }),
    );
    const added = c.resolve('gpt-5-nano');
    expect(added).toMatchObject({ name: 'gpt-5-nano', contextWindow: 400_000, maxOutputTokens: 128_000 });
    expect(added?.prices).toMatchObject({ input: 50_000_000, cachedInput: 5_000_000, output: 400_000_000 });
    expect(c.resolve('gpt-5-nano-2025-08-07')).toBe(added);
    const nano = c.resolve('gpt-4.1-nano');
    expect(nano?.prices).toEqual({ input: 200_000_000, cachedInput: 50_000_000, output: 800_000_000, batchInput: 100_000_000, batchOutput: 400_000_000, toolCalls: { webSearch: 10_000_000, fileSearch: 2_500_000 } });
    expect(nano).toMatchObject({ contextWindow: 1_047_576, maxOutputTokens: 32_768 });
    expect(c.resolve('gpt-4.1-nano-2025-04-14')).toBe(nano);
    expect(c.models.filter((m) => m.name === 'gpt-4.1-nano')).toHaveLength(1);
  });

  it('route_to maps one model name onto another', () => {
    const c = buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'team-default', route_to: 'gpt-4.1-nano' }] } }));
    expect(c.resolve('team-default')?.routeTo).toBe('gpt-4.1-nano');
    expect(c.resolve('gpt-4.1-nano')?.routeTo).toBeUndefined();
  });

  it('the same alias on two models is an error naming it', () => {
    const config = configFromObject({
      models: { catalogue: [{ name: 'a-model', aliases: ['shared'] }, { name: 'b-model', aliases: ['shared'] }] },
    });
    const err = configError(() => buildCatalogue(config));
    expect(err.message).toContain('shared');
    const clash = configFromObject({ models: { catalogue: [{ name: 'x-model', aliases: ['gpt-4.1-nano-2025-04-14'] }] } });
    expect(configError(() => buildCatalogue(clash)).message).toContain('gpt-4.1-nano-2025-04-14');
  });

  it('prices are exact integer nano-dollars per 1M tokens', () => {
    const cases: [number, number][] = [
      [0.025, 25_000_000],
      [0.1, 100_000_000],
      [0.4, 400_000_000],
      [1.1, 1_100_000_000],
      [0.000001, 1_000],
      [15, 15_000_000_000],
    ];
    const c = buildCatalogue(
      configFromObject({ models: { catalogue: cases.map(([usd], i) => ({ name: `m${i}`, price_per_1m: { input: usd, output: usd } })) } }),
    );
    cases.forEach(([, nano], i) => {
      expect(c.resolve(`m${i}`)?.prices?.input).toBe(nano);
      expect(c.resolve(`m${i}`)?.prices?.output).toBe(nano);
    });
  });
});

// Key policy fields (issue 5, point 2): the documented example (docs/configuration.md), ${VAR} numbers, paths in errors, and
// allow-listed models checked against the catalogue when the gateway starts.
describe('key policy in the config file', () => {
  it('the key entries of docs/configuration.md parse as documented', () => {
    const page = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const blocks = [...page.matchAll(/```yaml\n(keys:\n[\s\S]*?)```/g)].map((m) => m[1] as string);
    const yaml = blocks.find((block) => block.includes('batch-jobs')) as string;
    const config = validateConfig(parseConfigText(yaml, { SEARCH_APP_KEY: 'tg-search-app-0123456789' }, 'docs'), 'docs');
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

  it('`__proto__` as a per-model limit is refused naming its path, not dropped (issue 14, item 16)', () => {
    // YAML (like JSON.parse) keeps the key as an own property; zod's records would skip it.
    const yaml = `${KEY_YAML('tg-app-0123456789')}    limits:\n      models:\n        __proto__: { rpm: 1 }\n`;
    const error = configError(() => validateConfig(parseConfigText(yaml, {}, 'f.yaml'), 'f.yaml'));
    expect(error.message).toContain('  keys[0].limits.models.__proto__: ');
    // With unknown models passed through, nothing else would have stopped it.
    const passThrough = `models:\n  unknown: pass_through\n${yaml}`;
    expect(configError(() => validateConfig(parseConfigText(passThrough, {}, 'f.yaml'), 'f.yaml')).message).toContain('keys[0].limits.models.__proto__');
  });
});

describe('retirement and the upstream pool in the config', () => {
  it('refuses a successor outside the catalogue, and routing to a successor that is not named', () => {
    expect(() => buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'old', shutdown_date: '2020-01-01', successor: 'gpt-9' }] } }))).toThrow(
      'Invalid config: the successor gpt-9 of model old is not in the catalogue',
    );
    expect(() => buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'old', shutdown_date: '2020-01-01', on_shutdown: 'route_to_successor' }] } }))).toThrow(
      'Invalid config: model old routes to its successor after shutdown but names none',
    );
    expect(() => configFromObject({ models: { catalogue: [{ name: 'old', shutdown_date: '1 Jan 2020' }] } })).toThrow(/models\.catalogue\[0\]\.shutdown_date/);
  });

  it('takes upstreams with a ceiling as a tier name or figures, and refuses duplicate ids', () => {
    const config = configFromObject({
      upstreams: [
        { id: 'a', url: 'https://api.openai.com/v1', ceiling: 'tier-2' },
        { id: 'b', url: 'https://x.openai.azure.com/openai/v1', kind: 'azure', ceiling: { rpm: 10, models: { 'gpt-4.1-nano': { tpm: 1000 } } } },
      ],
    });
    expect(config.upstreams[0]?.ceiling).toEqual({ tier: 'tier-2', models: {} });
    expect(config.upstreams[1]).toMatchObject({ kind: 'azure', weight: 1, ceiling: { rpm: 10 } });
    expect(() => configFromObject({ upstreams: [{ id: 'a', url: 'https://a/v1' }, { id: 'a', url: 'https://b/v1' }] })).toThrow(/upstream ids must be unique/);
  });
});
