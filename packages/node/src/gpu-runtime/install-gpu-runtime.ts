import { rmSync } from "node:fs";
import { TesseraError } from "@tessera/protocol";
import type { CommandRunner } from "../hardware/command-runner.js";
import type { GpuBuild } from "./gpu-builds.js";
import { type GpuRuntimeRecord, writeGpuRuntimeRecord } from "./gpu-runtime-record.js";

/**
 * Installs a GPU build into the data dir with the user's own npm (their registry and proxy settings apply):
 *   npm install --prefix <dir> --save-exact --ignore-scripts @node-llama-cpp/<platform>@<node-llama-cpp's version>
 * (the prefix's package.json then pins exactly what is there). Scripts are not run (the platform packages have none; nothing else is installed). The record is written only after
 * npm succeeded, so a failed or interrupted install leaves the engine on the CPU build.
 */
export function gpuInstallCommand(runtimeDir: string, build: GpuBuild, version: string, platform: NodeJS.Platform = process.platform): [string, string[]] {
  return [
    platform === "win32" ? "npm.cmd" : "npm",
    ["install", "--prefix", runtimeDir, "--save-exact", "--ignore-scripts", "--no-audit", "--no-fund", ...build.packages.map((p) => `${p}@${version}`)],
  ];
}

export interface InstallGpuRuntimeOptions {
  runtimeDir: string;
  build: GpuBuild;
  version: string;
  /** Runs npm; production streams its output to the terminal. */
  run: CommandRunner;
  now?: () => Date;
  platform?: NodeJS.Platform;
  /** When the default install already has the build (Metal on macOS): only the record is written. */
  alreadyInstalled?: boolean;
}

export async function installGpuRuntime(options: InstallGpuRuntimeOptions): Promise<GpuRuntimeRecord> {
  const { runtimeDir, build, version } = options;
  // A record left from another build must not survive a failed install of this one.
  rmSync(`${runtimeDir}/tessera-gpu-runtime.json`, { force: true });
  if (!options.alreadyInstalled) {
    const [command, args] = gpuInstallCommand(runtimeDir, build, version, options.platform);
    const result = await options.run(command, args);
    if (result.code === 127) throw new TesseraError("not_found", `npm is not on the PATH: install Node.js with npm, or run by hand: ${command} ${args.join(" ")}`);
    if (result.code !== 0) {
      const said = (result.stderr ?? "").trim().split("\n").slice(-3).join(" / ");
      throw new TesseraError("unreachable", `npm could not install ${build.packages.join(", ")}@${version} (exit ${result.code})${said ? `: ${said}` : ""}`);
    }
  }
  const record: GpuRuntimeRecord = {
    gpu: build.gpu,
    packages: options.alreadyInstalled ? [] : build.packages,
    version,
    installedAt: (options.now?.() ?? new Date()).toISOString(),
  };
  writeGpuRuntimeRecord(runtimeDir, record);
  return record;
}
