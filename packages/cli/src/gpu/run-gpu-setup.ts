import {
  type CommandRunner,
  type GpuBuildKind,
  type GpuDetection,
  type GpuHost,
  type GpuRuntimeRecord,
  chooseGpuBuild,
  detectGpu,
  gpuInstallCommand,
  installGpuRuntime,
} from "@tessera/node";
import { TesseraError } from "@tessera/protocol";

/**
 * `tessera gpu setup` (and the GPU step of `tessera setup`): detect the GPU, pick node-llama-cpp's matching prebuilt
 * build, install it into `<data dir>/gpu-runtime` with npm. Every seam is injected: the detection runner answers
 * from recorded outputs in tests, the npm runner records the command instead of downloading.
 */
export interface GpuSetupDeps {
  /** Runs the detection tools (nvidia-smi, rocminfo, lspci, system_profiler). */
  run: CommandRunner;
  /** Runs npm (production: output streamed to the terminal). */
  npm: CommandRunner;
  host: GpuHost;
  runtimeDir: string;
  /** node-llama-cpp's version in this install. */
  version: string;
  /** Whether the lean install already has this package at `version` (Metal on macOS). */
  installedBeside(packageName: string): boolean;
  out(line: string): void;
  requested?: GpuBuildKind;
  dryRun?: boolean;
  /** Asked before downloading; absent: go ahead. */
  confirm?(question: string): Promise<boolean>;
}

export type GpuSetupResult =
  | { installed: true; detection: GpuDetection; record: GpuRuntimeRecord }
  | { installed: false; detection: GpuDetection; reason: string };

export function describeDetection(d: GpuDetection): string {
  if (d.vendor === "none") return `no NVIDIA, AMD or Apple GPU found${d.source ? ` (${d.source})` : " (no detection tool answered)"}`;
  const names = d.devices.length > 0 ? d.devices.join(", ") : "a GPU";
  return `${d.vendor === "nvidia" ? "NVIDIA" : d.vendor === "amd" ? "AMD" : "Apple"}: ${names} (from ${d.source}${d.driver ? `, driver ${d.driver}` : ""})`;
}

export async function runGpuSetup(deps: GpuSetupDeps): Promise<GpuSetupResult> {
  const detection = await detectGpu(deps.run, deps.host);
  deps.out(`gpu          ${describeDetection(detection)}`);
  const choice = chooseGpuBuild(deps.host.platform, deps.host.arch, detection.vendor, deps.requested);
  if (!choice.ok) return { installed: false, detection, reason: choice.reason };
  const { build } = choice;
  if (!detection.driverLoaded && detection.vendor !== "none") {
    deps.out(
      `warning      the ${detection.vendor === "nvidia" ? "NVIDIA driver" : "GPU driver"} does not answer (${detection.vendor === "nvidia" ? "nvidia-smi" : "rocminfo"}): the ${build.gpu} build needs it; until it works the engine falls back to the CPU build`,
    );
  }
  const alreadyInstalled = build.packages.every((p) => deps.installedBeside(p));
  const [command, args] = gpuInstallCommand(deps.runtimeDir, build, deps.version, deps.host.platform);
  const line = [command, ...args].join(" ");
  if (alreadyInstalled) deps.out(`build        ${build.gpu}: already in this install (${build.packages.join(", ")})`);
  else deps.out(`build        ${build.gpu}: ${build.packages.map((p) => `${p}@${deps.version}`).join(", ")} from the npm registry, into ${deps.runtimeDir}`);
  if (deps.dryRun) {
    if (!alreadyInstalled) deps.out(`would run    ${line}`);
    return { installed: false, detection, reason: "dry run" };
  }
  if (deps.confirm && !alreadyInstalled && !(await deps.confirm(`download the ${build.gpu} build of the embedded engine (hundreds of MB) now? (y/n)`))) {
    return { installed: false, detection, reason: "declined" };
  }
  if (!alreadyInstalled) deps.out(`running      ${line}`);
  const record = await installGpuRuntime({ runtimeDir: deps.runtimeDir, build, version: deps.version, run: deps.npm, platform: deps.host.platform, alreadyInstalled });
  deps.out(`installed    the ${build.gpu} build; the embedded engine loads it from its next start (and falls back to the CPU build if it cannot)`);
  return { installed: true, detection, record };
}

export function checkGpuBuildFlag(value: string | undefined): GpuBuildKind | undefined {
  if (value === undefined) return undefined;
  if (value === "cuda" || value === "vulkan" || value === "metal") return value;
  throw new TesseraError("bad_request", `--build must be cuda, vulkan or metal, got ${JSON.stringify(value)}`);
}
