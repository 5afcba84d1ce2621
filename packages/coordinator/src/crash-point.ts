/**
 * A test hook, nothing else: `crashPoint(name)` kills this process with SIGKILL, at once and without cleanup, when the
 * environment variable `TESSERA_CRASH_AT` equals `name`. Crash-recovery tests (the settlement worker's "killed between
 * sending a transaction and recording it") set it on a child process; in normal runs it is unset and this does nothing.
 *
 * It reads `process.env` itself, not through config.ts, on purpose: it is not a setting, and a test must be able to
 * arm it in any process without a flag reaching the code path. Names in use: `settlement.sent`.
 */
export function crashPoint(name: string): void {
  if (process.env.TESSERA_CRASH_AT === name) process.kill(process.pid, "SIGKILL");
}
