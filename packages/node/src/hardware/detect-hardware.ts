import type { GpuStats, GpuSummary, Hardware } from "@tessera/protocol";
import { tierForVram } from "../models/vram-tiers.js";
import type { CommandRunner } from "./command-runner.js";
import { NVIDIA_SMI_ARGS, parseNvidiaSmi } from "./parse-nvidia-smi.js";
import { parseAppleSysctl } from "./parse-apple.js";
import { ROCM_SMI_ARGS, parseRocmSmi } from "./parse-rocm-smi.js";

/**
 * What the node learns about its machine. `hardware` is what leaves the machine (register): GPU vendor, model name
 * and VRAM, CPU core count, RAM rounded down to whole GiB, tier — no hostname, no CPU model, no serials or bus ids.
 * `gpus` is the live sample for heartbeats (memory used, utilization, temperature, power).
 * Order: nvidia-smi, then rocm-smi, then Apple Silicon (macOS on arm64); none answering means a CPU node.
 */
export interface HostFacts {
  platform: NodeJS.Platform;
  arch: string;
  cpuCores: number;
  totalMemBytes: number;
}

export interface DetectedHardware {
  hardware: Hardware;
  gpus: GpuStats[];
}

export async function detectHardware(run: CommandRunner, host: HostFacts): Promise<DetectedHardware> {
  const ramMb = Math.floor(host.totalMemBytes / 1024 ** 3) * 1024;
  const cpu_cores = Math.max(1, Math.floor(host.cpuCores));
  let summaries: GpuSummary[] = [];
  const gpus = await sampleGpus(run, host);
  if (gpus.stats.length > 0) {
    summaries = gpus.stats.map((g) => ({ vendor: gpus.vendor, name: g.name.slice(0, 128), vram_mb: Math.round(g.memory_total_mb) }));
  } else if (host.platform === "darwin" && host.arch === "arm64") {
    const [brand, mem] = await Promise.all([run("sysctl", ["-n", "machdep.cpu.brand_string"]), run("sysctl", ["-n", "hw.memsize"])]);
    const chip = brand.code === 0 && mem.code === 0 ? parseAppleSysctl(brand.stdout, mem.stdout) : undefined;
    if (chip) summaries = [{ vendor: "apple", name: chip.name, vram_mb: chip.vramMb }];
  }
  // Layers split across GPUs (llama.cpp, vLLM tensor parallel), so the tier counts all of them together.
  const vramMb = summaries.reduce((sum, g) => sum + g.vram_mb, 0);
  return { hardware: { cpu_cores, ram_mb: ramMb, gpus: summaries, tier: tierForVram(vramMb) }, gpus: gpus.stats };
}

/** The live GPU sample alone, for each heartbeat. Apple Silicon reports none (no per-process GPU counters). */
export async function sampleGpus(
  run: CommandRunner,
  host: Pick<HostFacts, "platform">,
): Promise<{ vendor: GpuSummary["vendor"]; stats: GpuStats[] }> {
  if (host.platform === "darwin") return { vendor: "apple", stats: [] };
  const nvidia = await run("nvidia-smi", NVIDIA_SMI_ARGS);
  if (nvidia.code === 0) {
    const stats = parseNvidiaSmi(nvidia.stdout);
    if (stats.length > 0) return { vendor: "nvidia", stats };
  }
  const rocm = await run("rocm-smi", ROCM_SMI_ARGS);
  if (rocm.code === 0) {
    const stats = parseRocmSmi(rocm.stdout);
    if (stats.length > 0) return { vendor: "amd", stats };
  }
  return { vendor: "other", stats: [] };
}
