import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { CommandRunner } from "./command-runner.js";
import { detectHardware, sampleGpus } from "./detect-hardware.js";
import { parseAppleSysctl } from "./parse-apple.js";
import { parseNvidiaSmi } from "./parse-nvidia-smi.js";
import { parseRocmSmi } from "./parse-rocm-smi.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const GIB = 1024 ** 3;

/** A runner that answers from recorded outputs and records what was run; anything else is "not installed". */
function recorded(outputs: Record<string, string>): CommandRunner & { calls: string[] } {
  const calls: string[] = [];
  const run = async (command: string, args: readonly string[]) => {
    const line = [command, ...args].join(" ");
    calls.push(line);
    const hit = Object.entries(outputs).find(([prefix]) => line.startsWith(prefix));
    return hit ? { code: 0, stdout: hit[1] } : { code: 127, stdout: "" };
  };
  return Object.assign(run, { calls });
}

const linux = { platform: "linux" as const, arch: "x64", cpuCores: 16, totalMemBytes: 62.7 * GIB };

describe("nvidia-smi", () => {
  it("parses every GPU row of the recorded query", () => {
    expect(parseNvidiaSmi(fixture("nvidia-smi-2x4090.txt"))).toEqual([
      { name: "NVIDIA GeForce RTX 4090", memory_total_mb: 24564, memory_used_mb: 1021, utilization_pct: 3, temperature_c: 41, power_w: 27.53 },
      { name: "NVIDIA GeForce RTX 4090", memory_total_mb: 24564, memory_used_mb: 18433, utilization_pct: 97, temperature_c: 72, power_w: 412.8 },
    ]);
  });

  it("leaves out what the GPU cannot report ([N/A] power)", () => {
    expect(parseNvidiaSmi(fixture("nvidia-smi-laptop-na.txt"))).toEqual([
      { name: "NVIDIA GeForce RTX 3060 Laptop GPU", memory_total_mb: 6144, memory_used_mb: 5, utilization_pct: 0, temperature_c: 39 },
    ]);
  });

  it("ignores driver error text", () => {
    expect(parseNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")).toEqual([]);
  });

  it("detection runs the exact query and reports coarse capability: two 24 GB cards are the >=48gb tier", async () => {
    const run = recorded({ "nvidia-smi": fixture("nvidia-smi-2x4090.txt") });
    const { hardware, gpus } = await detectHardware(run, linux);
    expect(run.calls[0]).toBe(
      "nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw --format=csv,noheader,nounits",
    );
    expect(hardware).toEqual({
      cpu_cores: 16,
      ram_mb: 62 * 1024,
      gpus: [
        { vendor: "nvidia", name: "NVIDIA GeForce RTX 4090", vram_mb: 24564 },
        { vendor: "nvidia", name: "NVIDIA GeForce RTX 4090", vram_mb: 24564 },
      ],
      tier: ">=48gb",
    });
    expect(gpus).toHaveLength(2);
  });
});

describe("rocm-smi", () => {
  it("parses the recorded JSON", () => {
    expect(parseRocmSmi(fixture("rocm-smi-7900xtx.json"))).toEqual([
      { name: "Radeon RX 7900 XTX", memory_total_mb: 24560, memory_used_mb: 1424, utilization_pct: 4, temperature_c: 44, power_w: 31 },
    ]);
    expect(parseRocmSmi("not json")).toEqual([]);
  });

  it("is tried when nvidia-smi is absent", async () => {
    const run = recorded({ "rocm-smi": fixture("rocm-smi-7900xtx.json") });
    const { hardware } = await detectHardware(run, linux);
    expect(hardware.gpus).toEqual([{ vendor: "amd", name: "Radeon RX 7900 XTX", vram_mb: 24560 }]);
    expect(hardware.tier).toBe(">=24gb");
    expect(run.calls.map((c) => c.split(" ")[0])).toEqual(["nvidia-smi", "rocm-smi"]);
  });
});

describe("Apple Silicon", () => {
  it("reads the chip family and counts 75% of unified memory as VRAM", () => {
    expect(parseAppleSysctl("Apple M2 Pro\n", "34359738368\n")).toEqual({ name: "Apple M2 Pro", memoryMb: 32768, vramMb: 24576 });
    expect(parseAppleSysctl("Intel(R) Core(TM) i7-9750H", "17179869184")).toBeUndefined();
  });

  it("a 32 GB M2 Pro is the >=24gb tier; no nvidia-smi or rocm-smi is run on macOS", async () => {
    const run = recorded({ "sysctl -n machdep.cpu.brand_string": "Apple M2 Pro\n", "sysctl -n hw.memsize": "34359738368\n" });
    const { hardware, gpus } = await detectHardware(run, { platform: "darwin", arch: "arm64", cpuCores: 12, totalMemBytes: 32 * GIB });
    expect(hardware).toEqual({ cpu_cores: 12, ram_mb: 32768, gpus: [{ vendor: "apple", name: "Apple M2 Pro", vram_mb: 24576 }], tier: ">=24gb" });
    expect(gpus).toEqual([]);
    expect(run.calls.some((c) => c.startsWith("nvidia-smi") || c.startsWith("rocm-smi"))).toBe(false);
  });
});

describe("CPU only", () => {
  it("no GPU tool answers: a cpu-tier node with cores and RAM", async () => {
    const { hardware } = await detectHardware(recorded({}), { ...linux, cpuCores: 2, totalMemBytes: 7.8 * GIB });
    expect(hardware).toEqual({ cpu_cores: 2, ram_mb: 7 * 1024, gpus: [], tier: "cpu" });
  });

  it("nothing identifying leaves the machine: only vendor, GPU model, VRAM, cores, RAM, tier", async () => {
    const { hardware } = await detectHardware(recorded({ "nvidia-smi": fixture("nvidia-smi-2x4090.txt") }), linux);
    expect(Object.keys(hardware).sort()).toEqual(["cpu_cores", "gpus", "ram_mb", "tier"]);
    for (const g of hardware.gpus) expect(Object.keys(g).sort()).toEqual(["name", "vendor", "vram_mb"]);
  });

  it("sampleGpus gives the live heartbeat figures", async () => {
    const sample = await sampleGpus(recorded({ "nvidia-smi": fixture("nvidia-smi-2x4090.txt") }), linux);
    expect(sample.vendor).toBe("nvidia");
    expect(sample.stats[1]).toMatchObject({ memory_used_mb: 18433, utilization_pct: 97 });
  });
});
