import { arch, availableParallelism, platform, totalmem } from "node:os";
import type { GpuStats, Hardware } from "@tessera/protocol";
import { createCommandRunner, type CommandRunner } from "./hardware/command-runner.js";
import { detectHardware, sampleGpus, type HostFacts } from "./hardware/detect-hardware.js";

/**
 * The production wiring of hardware detection for the daemon and `tessera register`: the real command runner and
 * this host's facts. Tests inject their own `detectHardware` / `gpuStats` instead.
 */
export interface MachineProbe {
  detectHardware(): Promise<Hardware>;
  gpuStats(): Promise<GpuStats[]>;
}

export function machineProbe(run: CommandRunner = createCommandRunner()): MachineProbe {
  const host: HostFacts = { platform: platform(), arch: arch(), cpuCores: availableParallelism(), totalMemBytes: totalmem() };
  return {
    detectHardware: async () => (await detectHardware(run, host)).hardware,
    gpuStats: async () => (await sampleGpus(run, host)).stats,
  };
}
