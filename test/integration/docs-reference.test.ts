// The reference pages generated from the code (config schema, registered metrics, the admin
// API's OpenAPI document) are committed; they must be what the generator makes of today's code.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedPages } from '../../scripts/docs/pages.js';

describe('generated reference docs', async () => {
  const pages = await generatedPages();

  it('covers the config file, the metrics and the admin API', () => {
    expect(Object.keys(pages)).toEqual([
      'docs/reference/configuration.md',
      'docs/reference/metrics.md',
      'docs/reference/admin-api.md',
      'docs/reference/admin-openapi.json',
    ]);
  });

  for (const [path, text] of Object.entries(pages)) {
    it(`${path} is what \`npm run docs:generate\` writes`, () => {
      const committed = readFileSync(path, 'utf8');
      // On failure: run `npm run docs:generate` and commit the result.
      expect(committed, `${path} is out of date: run npm run docs:generate`).toBe(text);
    });
  }
});
