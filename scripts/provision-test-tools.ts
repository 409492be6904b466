// `npx tsx scripts/provision-test-tools.ts`: what the test suite's global setup does first, on its
// own: prints each test tool's binary (VAR=path), installing what is missing when permitted, or
// the one message that names the command to run (exit 1).
import { ProvisionError, provisionTestTools } from '../test/setup/provision.js';

try {
  for (const [name, path] of Object.entries(provisionTestTools())) process.stdout.write(`${name}=${path}\n`);
} catch (err) {
  if (!(err instanceof ProvisionError)) throw err;
  console.error(err.message);
  process.exitCode = 1;
}
