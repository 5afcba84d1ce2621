import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { arch, platform } from "node:os";
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import type { NodeConfig } from "@tessera/node/config";
import type { CommandResult, CommandRunner } from "@tessera/node";
import type { GpuSetupDeps } from "../gpu/run-gpu-setup.js";
import { printedCommand } from "../config.js";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";

type GpuFlags = NodeFlags & { build?: string; dryRun?: boolean; yes?: boolean };

/** npm with its progress on this terminal (stderr kept for the error message too); no timeout: builds are large. */
const streamingRunner: CommandRunner = (command, args) =>
  new Promise<CommandResult>((resolve) => {
    const child = spawn(command, [...args], { stdio: ["ignore", "inherit", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      process.stderr.write(chunk);
    });
    child.once("error", (err: NodeJS.ErrnoException) => resolve({ code: err.code === "ENOENT" ? 127 : 1, stdout: "", stderr: err.message }));
    child.once("close", (code) => resolve({ code: code ?? 1, stdout: "", stderr }));
  });

/** The real machine behind `tessera gpu setup` and setup's GPU step. */
export async function productionGpuSetupDeps(config: NodeConfig, options: Pick<GpuSetupDeps, "requested" | "dryRun" | "confirm">): Promise<GpuSetupDeps> {
  const { createCommandRunner, gpuRuntimeDir, installedBesideNodeLlamaCpp, nodeLlamaCppVersion } = await import("@tessera/node");
  const version = nodeLlamaCppVersion();
  return {
    run: createCommandRunner(),
    npm: streamingRunner,
    host: {
      platform: platform(),
      arch: arch(),
      readText: (path) => {
        try {
          return readFileSync(path, "utf8");
        } catch {
          return undefined;
        }
      },
    },
    runtimeDir: gpuRuntimeDir(config.paths.dataDir),
    version,
    installedBeside: (name) => installedBesideNodeLlamaCpp(name, version),
    out: (line) => process.stdout.write(`${line}\n`),
    ...options,
  };
}

/** `tessera gpu setup`: the embedded engine's GPU build for this machine, into the node's data dir. */
export function addGpuCommand(program: Command): void {
  const gpu = program.command("gpu").description("the embedded engine on this machine's GPU");
  withHomeOption(
    gpu
      .command("setup")
      .description("detect the GPU (NVIDIA, AMD, Apple) and install node-llama-cpp's matching prebuilt build (CUDA, Vulkan, Metal) into the node's data dir")
      .option("--build <kind>", "install this build instead of the detected one: cuda, vulkan or metal (e.g. vulkan on an NVIDIA card without CUDA)")
      .option("--dry-run", "detect and print the npm command, install nothing")
      .option("-y, --yes", "do not ask before downloading"),
  ).action(async (flags: GpuFlags) => {
    const { checkGpuBuildFlag, runGpuSetup } = await import("../gpu/run-gpu-setup.js");
    const requested = checkGpuBuildFlag(flags.build);
    const config = nodeConfigFrom(flags, false);
    const interactive = !flags.yes && !flags.dryRun && process.stdin.isTTY === true;
    const rl = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : undefined;
    try {
      const deps = await productionGpuSetupDeps(config, {
        requested,
        dryRun: flags.dryRun === true,
        confirm: rl ? async (q) => /^y(es)?$/i.test(((await rl.question(`${q} [y]: `)) || "y").trim()) : undefined,
      });
      const result = await runGpuSetup(deps);
      if (!result.installed && result.reason !== "dry run" && result.reason !== "declined") {
        throw new TesseraError("not_found", `${result.reason}: the embedded engine stays on the CPU build`);
      }
      if (result.installed) {
        const homeFlag = config.paths.home !== undefined ? ` --home ${config.paths.home}` : "";
        process.stdout.write(`next         ${printedCommand()} restart${homeFlag}   (then \`${printedCommand()} doctor${homeFlag}\` shows the build in use)\n`);
      }
    } finally {
      rl?.close();
    }
  });
}
