#!/usr/bin/env node
/**
 * `tollgate keys …`: the admin API from a terminal. The CLI's process entry, and its only reader of
 * the environment: TOLLGATE_URL (default http://127.0.0.1:8080) and TOLLGATE_ADMIN_TOKEN.
 */
import { runCli } from './run.js';

runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
}).then((code) => {
  process.exitCode = code;
});
