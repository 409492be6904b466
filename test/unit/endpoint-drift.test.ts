import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENDPOINTS, endpointKey, type Endpoint } from '../../src/proxy/endpoints.js';

/**
 * The endpoint table and OpenAI's published API (src/proxy/openai-paths.json, extracted from the
 * OpenAPI spec by scripts/extract-openai-paths.ts) agree: every path of the spec is served or
 * refused on purpose, and the table serves nothing the spec does not know.
 */
const spec = JSON.parse(readFileSync(new URL('../../src/proxy/openai-paths.json', import.meta.url), 'utf8')) as { paths: string[] };

/** `GET /v1/files/{file_id}` → `GET /v1/files/:file_id`. */
const template = (specPath: string): string => specPath.replace(/\{([^}]+)\}/g, ':$1');

function covers(endpoint: Endpoint, key: string): boolean {
  if (!endpoint.url.endsWith('/*')) return endpointKey(endpoint) === key;
  const [method, path] = key.split(' ') as [string, string];
  return method === endpoint.method && path.startsWith(endpoint.url.slice(0, -1));
}

/** Spec paths the table has no entry for. */
function unplanned(specPaths: readonly string[], table: readonly Endpoint[]): string[] {
  return specPaths.map(template).filter((key) => !table.some((endpoint) => covers(endpoint, key)));
}

describe('endpoint table against the OpenAPI spec', () => {
  it('every spec path is served or refused on purpose', () => {
    expect(unplanned(spec.paths, ENDPOINTS)).toEqual([]);
  });

  it('names a path that a newer spec adds without a table entry', () => {
    expect(unplanned([...spec.paths, 'POST /v1/holograms/{hologram_id}/render'], ENDPOINTS)).toEqual(['POST /v1/holograms/:hologram_id/render']);
  });

  it('serves nothing outside the spec, and each route once', () => {
    const known = new Set(spec.paths.map(template));
    const exact = ENDPOINTS.filter((endpoint) => endpoint.access === 'served').map(endpointKey);
    expect(exact.filter((key) => !known.has(key))).toEqual([]);
    expect(exact.filter((key, i) => exact.indexOf(key) !== i)).toEqual([]);
  });

  it('refuses the organisation admin API and checkpoint permissions, never forwards them', () => {
    const adminPaths = spec.paths.map(template).filter((key) => /\/v1\/(organization|projects)\/|\/permissions/.test(key));
    expect(adminPaths.length).toBeGreaterThan(100);
    const served = adminPaths.filter((key) => ENDPOINTS.some((endpoint) => covers(endpoint, key) && endpoint.access !== 'admin_only'));
    expect(served).toEqual([]);
  });
});
