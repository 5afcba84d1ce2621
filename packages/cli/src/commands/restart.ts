import { spawn } from "node:child_process";
import type { Command } from "commander";
import { TesseraError, parseDuration } from "@tessera/protocol";
import { printedCommand } from "../config.js";
import type { ServiceHost } from "../service/service-manager.js";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";
import { CLI_BIN, checkServiceName, defaultServiceName, printSteps, productionServiceHost } from "./service.js";

type RestartFlags = NodeFlags & { name?: string; timeout: string };

/**
 * `tessera restart`: drain, then start again. Under the service manager when this node's service is installed
 * (systemctl --user restart / launchctl kickstart -k: both SIGTERM the daemon, which drains, and start it again);
 * otherwise through the pid file: `tessera stop` (drain) then `tessera start --detach`. Flags given to the earlier
 * `start` are not remembered: settings that should survive belong in node.toml.
 */
export function addRestartCommand(program: Command, makeHost: () => Promise<ServiceHost> = productionServiceHost): void {
  withHomeOption(
    program
      .command("restart")
      .description("drain the node daemon, then start it again (under its service when installed, else detached through the pid file)")
      .option("--name <name>", "the service's name when it is not the default (see `tessera service install --name`)")
      .option("--timeout <duration>", "without a service: how long to wait for the drain before giving up", "60s"),
  ).action(async (flags: RestartFlags) => {
    const timeoutS = parseDuration(flags.timeout, "--timeout", { min: 1, max: 3600 });
    const host = await makeHost();
    const out = (line: string): void => void process.stdout.write(`${line}\n`);
    const config = nodeConfigFrom(flags, true);
    const { restartCommands, runSteps, serviceLocation, shellLine } = await import("../service/service-manager.js");
    if (host.platform === "linux" || host.platform === "darwin") {
      const name = checkServiceName(flags.name, defaultServiceName(host.platform));
      const target = serviceLocation(name, host);
      const { existsSync, readFileSync } = await import("node:fs");
      const { serviceRunsHome } = await import("../service/service-files.js");
      if (existsSync(target.file) && !serviceRunsHome(target.kind, readFileSync(target.file, "utf8"), config.paths.home)) {
        out(`the ${target.kind} service ${name} runs another node (${target.file}); restarting this home's daemon through its pid file`);
      } else if (existsSync(target.file)) {
        const steps = await runSteps(restartCommands(target, host.uid), host.run);
        printSteps(out, steps, shellLine);
        if (steps.manual.length === 0) return void out(`restarted the ${target.kind} service ${name}: the daemon drained, then started again`);
        out("restarting through the pid file instead");
      }
    } else checkServiceName(flags.name, "tessera-node");
    const { productionStopDeps, stopDaemon } = await import("../lifecycle/stop-daemon.js");
    const deps = await productionStopDeps();
    const pid = deps.readLivePid(config.paths.pidFile);
    const homeArgs = config.paths.home !== undefined ? ["--home", config.paths.home] : [];
    if (pid === undefined) out("no node daemon was running for this home: starting one");
    else {
      const outcome = await stopDaemon(config.paths.pidFile, pid, { force: false, timeoutS }, deps);
      if (!outcome.stopped) {
        throw new TesseraError("timeout", `the daemon (pid ${pid}) is still draining after ${flags.timeout}; wait, then \`${printedCommand()} start --detach${homeArgs.map((a) => ` ${a}`).join("")}\``);
      }
    }
    const child = spawn(process.execPath, [...process.execArgv, CLI_BIN, "start", "--detach", ...homeArgs], { stdio: ["ignore", "inherit", "inherit"] });
    const code = await new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? 1)));
    process.exitCode = code;
  });
}
