import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import { printedCommand } from "../config.js";
import type { ServiceHost } from "../service/service-manager.js";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";
import { checkServiceName, defaultServiceName, printSteps, productionServiceHost } from "./service.js";

type RemoveFlags = NodeFlags & { yes?: boolean; force?: boolean; name?: string };

/**
 * `tessera remove`: deletes this node from this machine after a confirmation that lists exactly what goes
 * (lifecycle/remove-node.ts). Refuses while the daemon runs unless `--force`, which drains and stops it first.
 */
export function addRemoveCommand(program: Command, makeHost: () => Promise<ServiceHost> = productionServiceHost): void {
  withHomeOption(
    program
      .command("remove")
      .description("delete this node from this machine: its service, config, keys, models and logs (asks first, listing each path)")
      .option("-y, --yes", "do not ask for confirmation")
      .option("--force", "when the daemon is running, drain and stop it first instead of refusing")
      .option("--name <name>", "the service's name when it is not the default (see `tessera service install --name`)"),
  ).action(async (flags: RemoveFlags) => {
    const host = await makeHost();
    const supported = host.platform === "linux" || host.platform === "darwin";
    const name = checkServiceName(flags.name, defaultServiceName(host.platform));
    const config = nodeConfigFrom(flags, false);
    const out = (line: string) => process.stdout.write(`${line}\n`);
    const homeFlag = config.paths.home !== undefined ? ` --home ${config.paths.home}` : "";
    const { COORDINATOR_NOTE, describePlan, executeRemoval, planRemoval } = await import("../lifecycle/remove-node.js");
    const { serviceLocation, uninstallService, shellLine } = await import("../service/service-manager.js");
    const { existsSync, readFileSync } = await import("node:fs");
    const { serviceRunsHome } = await import("../service/service-files.js");
    const location = supported ? serviceLocation(name, host) : undefined;
    // Another node's service of the same name (another --home) is left alone.
    const serviceFile =
      location && existsSync(location.file) && serviceRunsHome(location.kind, readFileSync(location.file, "utf8"), config.paths.home) ? location.file : undefined;
    const { productionStopDeps, stopDaemon } = await import("../lifecycle/stop-daemon.js");
    const stop = await productionStopDeps();
    const pid = stop.readLivePid(config.paths.pidFile);
    if (pid !== undefined && !flags.force) {
      throw new TesseraError("conflict", `the node daemon is running (pid ${pid}): stop it first (\`${printedCommand()} stop${homeFlag}\`), or pass --force to drain and stop it`);
    }
    const plan = planRemoval(config.paths, config.log_file, serviceFile);
    if (plan.remove.length === 0) {
      out(`nothing to remove: no node files at ${config.paths.home ?? `${config.paths.configDir} or ${config.paths.dataDir}`}`);
      return;
    }
    process.stdout.write(describePlan(plan));
    out(COORDINATOR_NOTE);
    if (!flags.yes) {
      if (process.stdin.isTTY !== true) throw new TesseraError("bad_request", "no terminal to confirm on: pass --yes to delete the files listed above");
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      const answer = (await rl.question('type "remove" to delete them: ')).trim();
      rl.close();
      if (answer !== "remove") throw new TesseraError("cancelled", "nothing was deleted");
    }
    if (serviceFile) {
      // The manager stops it (SIGTERM: a drain) before the files go, so it cannot restart the daemon on them.
      const outcome = await uninstallService(name, host);
      printSteps(out, outcome, shellLine);
    }
    const live = stop.readLivePid(config.paths.pidFile);
    if (live !== undefined) {
      const outcome = await stopDaemon(config.paths.pidFile, live, { force: false, timeoutS: Math.ceil(config.shutdown_grace_s) + 30 }, stop);
      if (!outcome.stopped) throw new TesseraError("timeout", `the daemon (pid ${live}) is still draining; nothing was deleted: run \`${printedCommand()} remove${homeFlag}\` again once it exits`);
    }
    executeRemoval(plan);
    out(`removed ${plan.remove.length} item${plan.remove.length === 1 ? "" : "s"}`);
  });
}
