// Vitest global setup, first of all: finds (or installs) redis-server, prometheus and chromium
// and names them to every test process through TOLLGATE_TEST_*_BIN (the workers inherit this
// process's environment).
import { ProvisionError, provisionTestTools } from './provision.js';

export default function setup(): void {
  try {
    Object.assign(process.env, provisionTestTools());
  } catch (err) {
    if (!(err instanceof ProvisionError)) throw err;
    // One clear line, not a stack trace: the fix is a command for the user to run.
    console.error(`\n${err.message}\n`);
    process.exit(1);
  }
}
