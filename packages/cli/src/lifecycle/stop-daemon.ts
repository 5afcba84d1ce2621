import { TesseraError } from "@tessera/protocol";

/**
 * Ends the daemon named by a pid file the way Ctrl-C does: SIGTERM, so it drains (no new jobs, in-flight ones finish
 * or move to other nodes) and says goodbye; then waits for it to exit. `force` sends SIGKILL instead. Shared by
 * `tessera stop`, `tessera restart` (no service installed) and `tessera remove --force`.
 */
export interface StopDeps {
  readLivePid(pidFile: string): number | undefined;
  processAlive(pid: number): boolean;
  kill(pid: number, signal: NodeJS.Signals): void;
  sleep(ms: number): Promise<void>;
  out(text: string): void;
}

export type StopOutcome = { stopped: true; pid: number } | { stopped: false; pid: number };

export async function stopDaemon(pidFile: string, pid: number, options: { force: boolean; timeoutS: number }, deps: StopDeps): Promise<StopOutcome> {
  try {
    deps.kill(pid, options.force ? "SIGKILL" : "SIGTERM");
  } catch (err) {
    throw new TesseraError("forbidden", `cannot signal pid ${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  deps.out(options.force ? `killed the node daemon (pid ${pid})\n` : `stopping the node daemon (pid ${pid}): draining…\n`);
  for (let waited = 0; waited < options.timeoutS * 1000; waited += 200) {
    if (deps.readLivePid(pidFile) === undefined && !deps.processAlive(pid)) {
      deps.out("stopped\n");
      return { stopped: true, pid };
    }
    await deps.sleep(200);
  }
  return { stopped: false, pid };
}

export async function productionStopDeps(sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms))): Promise<StopDeps> {
  const { processAlive, readLivePid } = await import("@tessera/node/pid-file");
  return {
    readLivePid: (file) => readLivePid(file),
    processAlive,
    kill: (pid, signal) => process.kill(pid, signal),
    sleep,
    out: (text) => process.stdout.write(text),
  };
}
