// `npm run docs:generate`: writes the reference pages that are generated from the code
// (docs/reference/). With --check it writes nothing and exits 1 when a committed page differs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generatedPages } from './pages.js';

const check = process.argv.includes('--check');
const stale: string[] = [];
for (const [path, text] of Object.entries(await generatedPages())) {
  let committed: string | undefined;
  try {
    committed = readFileSync(path, 'utf8');
  } catch {
    committed = undefined;
  }
  if (committed === text) continue;
  stale.push(path);
  if (!check) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}
if (check && stale.length > 0) {
  console.error(`Out of date (run npm run docs:generate): ${stale.join(', ')}`);
  process.exitCode = 1;
} else if (!check) {
  process.stdout.write(stale.length > 0 ? `wrote ${stale.join(', ')}\n` : 'docs/reference is up to date\n');
}
