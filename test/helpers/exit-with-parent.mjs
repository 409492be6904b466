/* global process, setInterval */
// Loaded with `--import` into gateways the tests spawn: a child whose test worker is gone (killed on
// a timeout, or the run interrupted) exits too, instead of serving on as an orphan.
const parent = Number(process.env.TOLLGATE_TEST_PARENT_PID);
if (Number.isInteger(parent) && parent > 1) {
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(70);
    }
  }, 1000).unref();
}
