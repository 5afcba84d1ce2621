import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import type { Command } from "commander";
import type { NodeConfig } from "@tessera/node/config";
import { TesseraError } from "@tessera/protocol";
import { printedCommand } from "../config.js";
import { reportError } from "../report-error.js";
import { FORCE_HINT } from "../wait-for-signal.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";

type StartFlags = NodeFlags & { detach?: boolean };

/** How long `--detach` watches the child for an early failure before leaving it to run. */
const DETACH_WATCH_MS = 2000;

/** `tessera start` (alias `tessera node start`): runs the node daemon in the foreground, or `--detach`ed. */
export function addStartCommand(program: Command): void {
  const describe = (cmd: Command) =>
    withNodeSettings(
      cmd
        .description("run the node daemon: register, heartbeat, take jobs; SIGTERM/SIGINT drain and exit 0")
        .option("--detach", "run in the background; writes a pid file and prints where the logs go")
        .option("--models <a,b>", "models to serve (the same as --served-models)")
        .addHelpText(
          "after",
          [
            "",
            "Contributing an idle machine (docs/contributing-a-gpu.md):",
            "  --idle-after 90s   serve once the machine has been quiet this long (no input, no other GPU use, not on battery);",
            "                     when its owner is back the node drains: jobs move to other nodes, the model leaves memory",
            "  --max-vram 0.8     largest share of each GPU's memory the node may use ([limits] max_vram_fraction)",
            "  --payout 0x…       your EVM payout address; stored in node.toml, and a self-operated node sets it with the coordinator",
            "  --models a,b       models to serve",
            "  e.g. tessera node start --payout 0xADDR --max-vram 0.8 --idle-after 90s --models a,b",
          ].join("\n"),
        ),
    ).action((flags: StartFlags) => (flags.detach ? detach(flags) : foreground(flags)));
  describe(program.command("start"));
  const node = program.command("node").description("node daemon commands (`tessera node start` = `tessera start`)");
  describe(node.command("start"));
}

async function refuseIfRunning(config: NodeConfig): Promise<void> {
  const { readLivePid } = await import("@tessera/node");
  const pid = readLivePid(config.paths.pidFile);
  if (pid !== undefined && pid !== process.pid) {
    throw new TesseraError(
      "conflict",
      `a node daemon is already running for this home (pid ${pid}, pid file ${config.paths.pidFile}); stop it with \`${printedCommand()} stop${config.paths.home !== undefined ? ` --home ${config.paths.home}` : ""}\``,
    );
  }
}

async function foreground(flags: StartFlags): Promise<void> {
  const config = nodeConfigFrom(flags, true);
  await refuseIfRunning(config);
  const { createNodeLogger, removePidFile, startDaemon, storePayoutAddress, writePidFile } = await import("@tessera/node");
  if (config.sources.payout_address === "flag") storePayoutAddress(config.paths.configFile, config.payout_address);
  const output = createNodeLogger({
    level: config.log_level,
    format: config.log_format,
    file: config.log_file,
    rotate: { maxBytes: config.log_max_mb * 2 ** 20, keep: config.log_keep },
  });
  writePidFile(config.paths.pidFile, process.pid);
  if (config.limits.max_power_watts > 0) {
    // [limits] max_power_watts: a cap that cannot be applied (not root, a board that refuses) is a warning.
    const { applyPowerCap, createCommandRunner } = await import("@tessera/node");
    const cap = await applyPowerCap(createCommandRunner(), config.limits.max_power_watts);
    output.logger[cap.applied ? "info" : "warn"](cap.detail);
  }
  const cleanup = () => {
    removePidFile(config.paths.pidFile, process.pid);
    output.close();
  };
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(config, { logger: output.logger });
  } catch (err) {
    output.logger.error({ err }, "node failed to start");
    cleanup();
    throw err;
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      output.logger.warn(`${signal} again: exiting without waiting for jobs`);
      cleanup();
      process.exit(130);
    }
    output.logger.info(`${signal} received: draining (up to ${config.shutdown_grace_s} s), ${FORCE_HINT}`);
    void daemon.stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await daemon.done;
  } catch (err) {
    cleanup();
    process.exit(reportError(err));
  }
  cleanup();
  process.exit(0);
}

/** Validates config in this process (so mistakes are reported here), then re-runs `start` without --detach. */
async function detach(flags: StartFlags): Promise<void> {
  const config = nodeConfigFrom(flags, true);
  await refuseIfRunning(config);
  const { removePidFile, writePidFile } = await import("@tessera/node");
  mkdirSync(dirname(config.log_file), { recursive: true });
  // The daemon writes its own log lines to log_file; its stderr goes there too so a crash is never silent.
  const stderrFd = openSync(config.log_file, "a", 0o600);
  const args = process.argv.slice(1).filter((arg) => arg !== "--detach");
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    detached: true,
    stdio: ["ignore", "ignore", stderrFd],
  });
  closeSync(stderrFd);
  if (child.pid === undefined) throw new TesseraError("internal_error", "could not start the daemon process");
  writePidFile(config.paths.pidFile, child.pid);
  const early = await new Promise<number | null | "running">((resolve) => {
    const timer = setTimeout(() => resolve("running"), DETACH_WATCH_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  if (early !== "running") {
    removePidFile(config.paths.pidFile, child.pid);
    throw new TesseraError("internal_error", `the daemon exited at once (code ${early}); see ${config.log_file}`);
  }
  child.unref();
  const homeFlag = config.paths.home !== undefined ? ` --home ${config.paths.home}` : "";
  const tessera = printedCommand();
  process.stdout.write(
    [
      `node daemon started in the background (pid ${child.pid})`,
      `pid file  ${config.paths.pidFile}`,
      `logs      ${config.log_file}  (${tessera} logs -f${homeFlag})`,
      `stop      ${tessera} stop${homeFlag}`,
      "",
    ].join("\n"),
  );
}
