/* global process, URL */
// Builds the console's pages into dist/console-ui (run by `npm run build`): one ES module bundle,
// one stylesheet, index.html. No CDN, no inline code (the CSP allows scripts and styles from self only).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here('../dist/console-ui/');

export async function buildConsole() {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [here('src/main.tsx')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outfile: `${out}app.js`,
    legalComments: 'linked',
    logLevel: 'warning',
  });
  const uplotCss = readFileSync(here('../node_modules/uplot/dist/uPlot.min.css'), 'utf8');
  writeFileSync(`${out}app.css`, `${uplotCss}\n${readFileSync(here('style.css'), 'utf8')}`);
  copyFileSync(here('index.html'), `${out}index.html`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildConsole();
