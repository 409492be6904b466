// Real Chromium for the console's tests: Debian's /usr/bin/chromium (installed by .ci/run) driven
// by playwright-core; axe-core for accessibility; screenshots saved as test artifacts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM = process.env.TOLLGATE_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = 'test-artifacts/console';
export const WIDTHS = [1440, 375] as const;

/** The console's pages, built as `npm run build` builds them (fresh for this run). */
export function buildConsolePages(): void {
  execFileSync(process.execPath, ['console/build.mjs'], { stdio: 'inherit' });
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/** axe-core in the page: no serious or critical violation (the page's CSP does not apply to evaluate). */
export async function expectAccessible(page: Page, name: string): Promise<void> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: unknown) => Promise<{ violations: AxeViolation[] }> } }).axe;
    const result = await axe.run((globalThis as unknown as { document: unknown }).document);
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target) }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad, `${name}: ${JSON.stringify(bad, null, 1)}`).toEqual([]);
}

/** Screenshots of the page as it is, at 1440 and 375 px wide; the viewport goes back to 1440. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    await page.screenshot({ path: `${ARTIFACTS}/${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1440, height: 900 });
}

/** No horizontal scrolling of the page itself at 375 px (wide tables scroll inside their box). */
export async function expectFitsNarrow(page: Page): Promise<void> {
  await page.setViewportSize({ width: 375, height: 900 });
  const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'));
  await page.setViewportSize({ width: 1440, height: 900 });
  expect(overflow).toBeLessThanOrEqual(0);
}
