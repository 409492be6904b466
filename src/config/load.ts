import { readFile } from 'node:fs/promises';
import { parseDocument, isScalar, visit } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** A config problem: names the file, the path inside it and what is wrong. Stops the process. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Readonly<Record<string, string | undefined>>;

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replace `${VAR}` and `${VAR:-default}` in one string; `$${` escapes a literal `${`.
 * Throws when a variable without default is unset, naming it.
 */
export function substitute(value: string, env: Env, where: string): string {
  return value.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (name === undefined) return '${';
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${where}: environment variable ${name} is not set (and no default is given with \${${name}:-default})`);
  });
}

function pathToString(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || '(top level)';
}

/**
 * Parse YAML text, substituting environment references inside string scalars (never in the raw
 * text, so a secret containing YAML syntax cannot change the document's shape). Substituted
 * values stay strings; the schema reads numeric and boolean fields from strings, so
 * `shutdown_grace_ms: ${GRACE:-30000}` works while a numeric secret stays a string.
 */
export function parseConfigText(text: string, env: Env, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(`Invalid config file ${file}: ${doc.errors[0]?.message ?? 'YAML syntax error'}`);
  }
  visit(doc, {
    Scalar(_key, node, path) {
      if (!isScalar(node) || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const where = `${file}: ${describeYamlPath(path)}`;
      node.value = substitute(node.value, env, where);
    },
  });
  return doc.toJS() ?? {};
}

function describeYamlPath(path: readonly unknown[]): string {
  const parts: PropertyKey[] = [];
  for (let i = 0; i < path.length; i++) {
    const node = path[i];
    const next = path[i + 1];
    if (node && typeof node === 'object' && 'items' in node && Array.isArray(node.items) && next !== undefined) {
      const index = node.items.indexOf(next);
      const item: unknown = node.items[index];
      if (item && typeof item === 'object' && 'key' in item) {
        const key = (item as { key: unknown }).key;
        parts.push(isScalar(key) ? String(key.value) : String(key));
      } else if (index >= 0) {
        parts.push(index);
      }
    }
  }
  return pathToString(parts);
}

/** Validate a plain object against the schema; the error names the path and the problem. */
export function validateConfig(raw: unknown, file: string): Config {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `  ${pathToString(issue.path)}: ${issue.message}`);
  throw new ConfigError(`Invalid config file ${file}:\n${lines.join('\n')}`);
}

export async function loadConfigFile(file: string, env: Env): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`Cannot read config file ${file}: ${code === 'ENOENT' ? 'no such file' : String(err)}`);
  }
  return validateConfig(parseConfigText(text, env, file), file);
}

/** A config built in code (tests, embedding): same validation and defaults as the file. */
export function configFromObject(raw: z.input<typeof configSchema>): Config {
  return validateConfig(raw, '(inline config)');
}
