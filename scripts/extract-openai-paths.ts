/**
 * Extracts the method + path list of OpenAI's public API from its OpenAPI spec, as the endpoint
 * table's drift test reads it (src/proxy/openai-paths.json).
 *
 *   npx tsx scripts/extract-openai-paths.ts <openapi.yml> [source description]
 *
 * The spec is the copy in the public openai-node repository, `api_reference/openapi.transformed.yml`.
 * Query variants of one path (`/responses?beta=true`) are one entry.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

const [specPath, source = 'openai-node api_reference/openapi.transformed.yml'] = process.argv.slice(2);
if (!specPath) {
  console.error('usage: tsx scripts/extract-openai-paths.ts <openapi.yml> [source]');
  process.exit(2);
}
const spec = parse(readFileSync(specPath, 'utf8')) as { info: { version: string }; paths: Record<string, Record<string, unknown>> };
const paths = new Set<string>();
for (const [path, operations] of Object.entries(spec.paths)) {
  for (const method of METHODS) {
    if (operations[method] === undefined) continue;
    paths.add(`${method.toUpperCase()} /v1${path.split('?')[0]}`);
  }
}
const out = { source, spec_version: spec.info.version, paths: [...paths].sort() };
writeFileSync(new URL('../src/proxy/openai-paths.json', import.meta.url), `${JSON.stringify(out, null, 2)}\n`);
console.log(`${out.paths.length} paths from spec ${out.spec_version}`);
