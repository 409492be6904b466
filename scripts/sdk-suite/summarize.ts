/**
 * Compares two Jest JSON reports of the openai SDK's API-resource tests: one run against the spec's
 * mock directly, one through tollgate in front of the same mock (scripts/sdk-suite/run.sh).
 *
 *   npx tsx scripts/sdk-suite/summarize.ts <direct.json> <through-tollgate.json> [sdk version]
 *
 * Prints the counts as a Markdown table row (docs/compatibility.md) and every test that passes
 * directly but fails through tollgate, by cause. Exits 1 when one fails for any other cause than
 * tollgate's documented refusals (the admin API's 403, what tollgate cannot meter).
 */
import { readFileSync } from 'node:fs';

interface JestReport {
  readonly testResults: readonly {
    readonly name: string;
    readonly assertionResults: readonly { readonly fullName: string; readonly status: string; readonly failureMessages: readonly string[] }[];
  }[];
}

/** tollgate's refusals on purpose, recognised by the SDK error's message (status and OpenAI's `message`). */
const ON_PURPOSE: readonly { readonly cause: string; readonly pattern: RegExp }[] = [
  { cause: 'admin_api_not_served (403): the organisation admin API', pattern: /^Error: 403 .*belongs to OpenAI's organization admin API/ },
  { cause: 'endpoint_not_served (403): work tollgate cannot meter', pattern: /^Error: 403 .*is not served through tollgate/ },
];

function outcomes(path: string): Map<string, { status: string; message: string }> {
  const report = JSON.parse(readFileSync(path, 'utf8')) as JestReport;
  const out = new Map<string, { status: string; message: string }>();
  for (const file of report.testResults) {
    const name = file.name.replace(/^.*\/tests\/api-resources\//, '');
    for (const test of file.assertionResults) {
      out.set(`${name} › ${test.fullName}`, { status: test.status, message: (test.failureMessages[0] ?? '').split('\n')[0] ?? '' });
    }
  }
  return out;
}

const [directPath, viaPath, version = '?'] = process.argv.slice(2);
if (!directPath || !viaPath) {
  console.error('usage: tsx scripts/sdk-suite/summarize.ts <direct.json> <through-tollgate.json> [sdk version]');
  process.exit(2);
}
const direct = outcomes(directPath);
const via = outcomes(viaPath);
const count = (results: Map<string, { status: string }>, status: string): number => [...results.values()].filter((r) => r.status === status).length;

const byCause = new Map<string, string[]>();
for (const [test, result] of direct) {
  if (result.status !== 'passed') continue;
  const through = via.get(test);
  if (through?.status === 'passed') continue;
  const message = through?.message ?? 'missing from the run through tollgate';
  const cause = ON_PURPOSE.find((c) => c.pattern.test(message))?.cause ?? `other: ${message.slice(0, 160)}`;
  byCause.set(cause, [...(byCause.get(cause) ?? []), test]);
}

const refused = (i: number): number => byCause.get(ON_PURPOSE[i]!.cause)?.length ?? 0;
const others = [...byCause].filter(([cause]) => cause.startsWith('other: ')).reduce((n, [, tests]) => n + tests.length, 0);
console.log(`tests: ${direct.size}; directly: ${count(direct, 'passed')} passed, ${count(direct, 'failed')} failed, ${count(direct, 'pending') + count(direct, 'skipped')} skipped`);
console.log(`through tollgate: ${count(via, 'passed')} passed, ${count(via, 'failed')} failed`);
for (const [cause, tests] of byCause) {
  console.log(`\n${tests.length} pass directly, fail through tollgate: ${cause}`);
  for (const test of tests) console.log(`  ${test}`);
}
console.log('\n| date | openai-node | tests | pass directly | pass through tollgate | admin API 403 | not meterable 403 | other failures |');
console.log('|---|---|---|---|---|---|---|---|');
console.log(
  `| ${new Date().toISOString().slice(0, 10)} | ${version} | ${direct.size} | ${count(direct, 'passed')} | ${count(via, 'passed')} | ${refused(0)} | ${refused(1)} | ${others} |`,
);
process.exit(others === 0 ? 0 : 1);
