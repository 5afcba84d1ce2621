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
    const { processAlive, readLivePid } = await import("@tessera/node/pid-file");
    const pid = readLivePid(config.paths.pidFile);
    if (pid === undefined) throw new TesseraError("not_found", `no node daemon is running for this home (no live pid in ${config.paths.pidFile})`);
    try {
      process.kill(pid, flags.force ? "SIGKILL" : "SIGTERM");
    } catch (err) {
      throw new TesseraError("forbidden", `cannot signal pid ${pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    process.stdout.write(flags.force ? `killed the node daemon (pid ${pid})\n` : `stopping the node daemon (pid ${pid}): draining…\n`);
    for (let waited = 0; waited < timeoutS * 1000; waited += 200) {
      if (readLivePid(config.paths.pidFile) === undefined && !processAlive(pid)) {
        process.stdout.write("stopped\n");
        return;
      }
      await sleep(200);
    }
    throw new TesseraError("timeout", `the daemon (pid ${pid}) is still draining after ${flags.timeout}; wait, or \`${printedCommand()} stop --force\``);
  });
}
