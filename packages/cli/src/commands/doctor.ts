import { statfsSync } from "node:fs";
import { platform } from "node:os";
import type { Command } from "commander";
// Read at call time only: main.ts imports this file through the command index.
import { CLI_VERSION } from "../version.js";
import type { DoctorDeps } from "../doctor/run-doctor.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";
import { printedCommand } from "../config.js";

/** The real machine behind `tessera doctor`. */
export async function productionDoctorDeps(flags: NodeFlags): Promise<DoctorDeps> {
  const { createBackendFromConfig, createCommandRunner, createNodeLogger, gpuRuntimeDir, machineProbe, resolveStageRuntime, signerFromKeyFile } = await import("@tessera/node");
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  const run = createCommandRunner();
  return {
    cliVersion: CLI_VERSION,
    command: printedCommand(),
    nodeVersion: process.version,
    loadConfig: () => nodeConfigFrom(flags, false),
    readSigner: signerFromKeyFile,
    fetch: (input, init) => fetch(input, init),
    nowMs: () => Date.now(),
    run,
    platform: platform(),
    diskSpace: (path) => {
      const s = statfsSync(path);
      return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    },
    openBackend: (config) => createBackendFromConfig(config, { fetch: (input, init) => fetch(input, init), logger }),
    hardware: () => machineProbe(run).detectHardware(),
    // GPU backends are looked for where `tessera gpu setup` installs them (the configured data dir), as the daemon does.
    stageRuntime: (backend) => {
      let where: { gpuRuntimeDir?: string } = {};
      try {
        where = { gpuRuntimeDir: gpuRuntimeDir(nodeConfigFrom(flags, false).paths.dataDir) };
      } catch {
        // no usable config: the config check reports it; look beside node-llama-cpp only
      }
      return resolveStageRuntime(backend, undefined, where);
    },
  };
}

/** `tessera doctor`: one [OK]/[WARN]/[FAIL] line per check; exit 1 on any FAIL. */
export function addDoctorCommand(program: Command, makeDeps: (flags: NodeFlags) => Promise<DoctorDeps> = productionDoctorDeps): void {
  withNodeSettings(
    program.command("doctor").description("check this node: config, keys, coordinator, registration, backend, models, clock, disk, GPU driver, stage runtime").option("--json", "print JSON"),
  ).action(async (flags: NodeFlags & { json?: boolean }) => {
    const { doctorExitCode, formatResults, runDoctor } = await import("../doctor/run-doctor.js");
    const results = await runDoctor(await makeDeps(flags));
    process.stdout.write(flags.json ? `${JSON.stringify({ checks: results }, null, 2)}\n` : formatResults(results));
    process.exitCode = doctorExitCode(results);
  });
}
