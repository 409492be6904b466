// docs/reference/configuration.md, from the config file's zod schema (src/config/schema.ts): every
// field's path, type, default and description. A field without a description is an error, so a
// new field cannot reach the docs undescribed.
import { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';
import { DEFAULT_TIERS, TIER_NAMES } from '../../src/config/defaults.js';
import { cell, GENERATED_NOTE } from './markdown.js';

type Json = Readonly<Record<string, unknown>>;

const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const objectOf = (value: unknown): Json => (isJson(value) ? value : {});
const listOf = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);

interface Row {
  readonly path: string;
  readonly type: string;
  readonly defaultValue: string;
  readonly description: string;
}

function numberType(schema: Json): string {
  const base = schema.type === 'integer' ? 'integer' : 'number';
  if (schema.exclusiveMinimum === 0) return `${base} > 0`;
  if (typeof schema.minimum === 'number') return `${base} ≥ ${schema.minimum}`;
  return base;
}

/** The type of a schema in words; nested objects are described in their own rows. */
function typeOf(schema: Json): string {
  const anyOf = listOf(schema.anyOf).map(objectOf);
  if (anyOf.length > 0) {
    const parts = anyOf.filter((s) => s.type !== 'null').map(typeOf);
    return parts.join(' or ') + (anyOf.some((s) => s.type === 'null') ? ' or null' : '');
  }
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => `\`${String(v)}\``).join(', ')}`;
  switch (schema.type) {
    case 'integer':
    case 'number':
      return numberType(schema);
    case 'boolean':
      return 'boolean';
    case 'string':
      return schema.format === 'uri' ? 'URL' : schema.format === 'date-time' ? 'ISO 8601 date-time with a zone' : 'string';
    case 'array': {
      const items = objectOf(schema.items);
      return items.type === 'object' ? 'list of objects' : `list of ${typeOf(items)}`;
    }
    case 'object':
      return isJson(schema.additionalProperties) ? 'map' : 'object';
    default:
      return 'any';
  }
}

function defaultOf(schema: Json): string {
  if (!('default' in schema)) return '';
  const value = schema.default;
  if (isJson(value) && Object.keys(value).length === 0 && schema.type === 'object') return '';
  return `\`${JSON.stringify(value)}\``;
}

function mapKeyName(schema: Json): string {
  const names = objectOf(schema.propertyNames);
  return Array.isArray(names.enum) ? '<tier>' : '<model>';
}

/** Rows for a schema and everything nested in it, depth first, in the schema's order. */
function rowsOf(path: string, schema: Json, rows: Row[]): void {
  if (path !== '') {
    const description = schema.description;
    if (typeof description !== 'string' || description === '') throw new Error(`config field ${path} has no description: add .describe() in src/config/schema.ts`);
    rows.push({ path, type: typeOf(schema), defaultValue: defaultOf(schema), description });
  }
  if (schema.type === 'object' && isJson(schema.properties)) {
    for (const [name, child] of Object.entries(schema.properties)) rowsOf(path === '' ? name : `${path}.${name}`, objectOf(child), rows);
  } else if (schema.type === 'object' && isJson(schema.additionalProperties)) {
    const value = schema.additionalProperties;
    if (isJson(value.properties)) for (const [name, child] of Object.entries(value.properties)) rowsOf(`${path}.${mapKeyName(schema)}.${name}`, objectOf(child), rows);
  } else if (schema.type === 'array') {
    const items = objectOf(schema.items);
    if (isJson(items.properties)) for (const [name, child] of Object.entries(items.properties)) rowsOf(`${path}[].${name}`, objectOf(child), rows);
  }
}

function tierTable(): string[] {
  const figure = (n: number | null) => (n === null ? '-' : n.toLocaleString('en-US'));
  return [
    '| tier | rpm | rpd | tpm | batch_queue_tokens |',
    '|---|---|---|---|---|',
    ...TIER_NAMES.map((name) => {
      const t = DEFAULT_TIERS[name];
      return `| \`${name}\` | ${figure(t.rpm)} | ${figure(t.rpd)} | ${figure(t.tpm)} | ${figure(t.batch_queue_tokens)} |`;
    }),
  ];
}

export function renderConfigReference(): string {
  const root = objectOf(z.toJSONSchema(configSchema, { io: 'output', unrepresentable: 'any' }));
  const lines = [
    '# Configuration reference',
    '',
    GENERATED_NOTE('src/config/schema.ts'),
    '',
    'The config file is YAML (`TOLLGATE_CONFIG`, default `config/tollgate.yaml`), validated at start against this schema: an unknown field or a wrong value stops the process with a message naming the path. `${VAR}` and `${VAR:-default}` are replaced from the environment inside string values; numbers and booleans may come from variables. How the fields work together: [Configuration](../configuration.md).',
    '',
  ];
  for (const [name, child] of Object.entries(objectOf(root.properties))) {
    const rows: Row[] = [];
    rowsOf(name, objectOf(child), rows);
    const [head, ...rest] = rows;
    if (!head) continue;
    lines.push(`## \`${name}\``, '', cell(head.description), '');
    if (name === 'tiers') lines.push('Built-in tier table (`-`: no limit of that kind):', '', ...tierTable(), '');
    const shown = rest.length > 0 ? rest : [head];
    lines.push('| field | type | default | description |', '|---|---|---|---|');
    for (const row of shown) lines.push(`| \`${row.path}\` | ${cell(row.type)} | ${row.defaultValue} | ${cell(row.description)} |`);
    lines.push('');
  }
  return lines.join('\n');
}
