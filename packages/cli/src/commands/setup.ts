import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { settingFlagsFromOptions } from "@tessera/node/config";
import { type NodeFlags, withNodeSettings } from "./node-options.js";
import { checkJoinToken } from "./register.js";
import { printedCommand } from "../config.js";

/** `tessera setup`: the guided first run (hardware, backend, model, keys, config, register). `--yes` takes defaults. */
export function addSetupCommand(program: Command): void {
  withNodeSettings(
    program
      .command("setup")
      .description("set this node up: detect hardware and tier, probe backends, pick the tier's model, make keys, write node.toml, register")
      .option("-y, --yes", "take every default without asking")
      .option("--join-token <token>", "a join token from the coordinator's owner: admits your operator key where admission is `token`"),
  ).action(async (flags: NodeFlags & { yes?: boolean; joinToken?: string }) => {
    const joinToken = checkJoinToken(flags.joinToken);
    const { createBackendFromConfig, createNodeLogger, machineProbe } = await import("@tessera/node");
    const { runSetup } = await import("../setup/run-setup.js");
    const { logger } = createNodeLogger({ level: "warn", stdout: { write: (line: string) => process.stderr.write(line) } });
    const interactive = !flags.yes && process.stdin.isTTY === true;
    const rl = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : undefined;
    try {
      await runSetup({
        home: flags.home,
        flags: settingFlagsFromOptions(flags),
        env: process.env,
        // Without a terminal there is nobody to ask: defaults, as with --yes.
        yes: !interactive,
        ask: async (question, defaultAnswer) => (await rl!.question(`${question} [${defaultAnswer}]: `)) || defaultAnswer,
        hardware: () => machineProbe().detectHardware(),
        fetch: (input, init) => fetch(input, init),
        nowMs: () => Date.now(),
        sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
        openBackend: (config) => createBackendFromConfig(config, { fetch: (input, init) => fetch(input, init), logger }),
        out: process.stdout,
        err: process.stderr,
        joinToken,
        command: printedCommand(),
        gpuSetup: async (config, confirm) => {
          const [{ runGpuSetup }, { productionGpuSetupDeps }] = await Promise.all([import("../gpu/run-gpu-setup.js"), import("./gpu.js")]);
          const result = await runGpuSetup(await productionGpuSetupDeps(config, { confirm }));
          if (!result.installed && result.reason !== "declined") process.stdout.write(`gpu          ${result.reason}: the embedded engine runs on the CPU build\n`);
        },
      });
    } finally {
      rl?.close();
    }
  });
}
