import type { Command } from "commander";
import { TesseraError, parseDuration } from "@tessera/protocol";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";
import { printedCommand } from "../config.js";

type StopFlags = NodeFlags & { timeout: string; force?: boolean };

/**
 * `tessera stop`: ends the daemon of this home (its pid file) the way Ctrl-C does: SIGTERM, so it drains (no new jobs,
 * in-flight ones finish or move to other nodes) and says goodbye; waits for it to exit. `--force` kills it at once.
 */
export function addStopCommand(program: Command, sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms))): void {
  withHomeOption(
    program
      .command("stop")
      .description("stop this home's node daemon: it drains (in-flight jobs finish or move to other nodes), then exits")
      .option("--timeout <duration>", "how long to wait for the drain before giving up (it keeps draining)", "60s")
      .option("--force", "kill it at once (SIGKILL): in-flight jobs move to other nodes mid-answer"),
  ).action(async (flags: StopFlags) => {
    const timeoutS = parseDuration(flags.timeout, "--timeout", { min: 1, max: 3600 });
    const config = nodeConfigFrom(flags, false);
    const { productionStopDeps, stopDaemon } = await import("../lifecycle/stop-daemon.js");
    const deps = await productionStopDeps(sleep);
    const pid = deps.readLivePid(config.paths.pidFile);
    if (pid === undefined) throw new TesseraError("not_found", `no node daemon is running for this home (no live pid in ${config.paths.pidFile})`);
    const outcome = await stopDaemon(config.paths.pidFile, pid, { force: flags.force === true, timeoutS }, deps);
    if (outcome.stopped) return;
    throw new TesseraError("timeout", `the daemon (pid ${pid}) is still draining after ${flags.timeout}; wait, or \`${printedCommand()} stop --force\``);
  });
}
