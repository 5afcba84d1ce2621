import type { CommandRunner } from "../hardware/command-runner.js";

/**
 * Which GPU this machine has, for choosing a node-llama-cpp build (`tessera gpu setup`, `tessera setup`). Unlike
 * hardware/detect-hardware.ts (what a node advertises: VRAM, live stats, needs a working driver), this also finds a
 * GPU whose driver or tools are missing, so setup can say what to install. Sources, first answer wins:
 *   macOS: `system_profiler SPDisplaysDataType` (arm64 without it: Apple Silicon);
 *   else: `nvidia-smi -L`, /proc/driver/nvidia/version, `rocminfo`, `rocm-smi --showproductname`, `lspci`.
 * Every source is parsed from its recorded output in tests; a missing tool answers code 127 and is skipped.
 */
export type GpuVendor = "nvidia" | "amd" | "apple" | "none";

export interface GpuDetection {
  vendor: GpuVendor;
  /** Device names as the source printed them. */
  devices: string[];
  /** Which source answered ("nvidia-smi -L", "lspci", …); "" when none did. */
  source: string;
  /** The driver version when a source reports one. */
  driver?: string;
  /** Whether the vendor's driver answered (nvidia-smi, /proc/driver/nvidia, rocminfo); lspci alone cannot tell. */
  driverLoaded: boolean;
}

export interface GpuHost {
  platform: NodeJS.Platform;
  arch: string;
  /** Reads a file's text, or undefined when it cannot (production: fs.readFileSync). */
  readText(path: string): string | undefined;
}

export function parseNvidiaSmiList(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((line) => /^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?\s*$/.exec(line.trim())?.[1])
    .filter((name): name is string => name !== undefined);
}

/** /proc/driver/nvidia/version: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  …". */
export function parseProcNvidiaVersion(text: string): string | undefined {
  return /Kernel Module\s+(\d+(?:\.\d+)+)/.exec(text)?.[1];
}

/** rocminfo: one block per HSA agent; the GPU agents' "Marketing Name". */
export function parseRocminfo(stdout: string): string[] {
  const names: string[] = [];
  for (const block of stdout.split(/^\*{3,}\s*$/m)) {
    if (!/^\s*Device Type:\s*GPU\s*$/m.test(block)) continue;
    const name = /^\s*Marketing Name:\s*(.+?)\s*$/m.exec(block)?.[1] ?? /^\s*Name:\s*(.+?)\s*$/m.exec(block)?.[1];
    if (name) names.push(name);
  }
  return names;
}

/** rocm-smi --showproductname: "GPU[0]		: Card Series: 		Radeon RX 7900 XTX" (spacing varies by version). */
export function parseRocmSmiProductNames(stdout: string): string[] {
  return [...stdout.matchAll(/Card [Ss]eries:\s*(.+?)\s*$/gm)].map((m) => m[1]!);
}

/** lspci: display-class devices by vendor. "[AMD/ATI] Navi 31 [Radeon RX 7900 XT/…]" keeps the bracketed name. */
export function parseLspci(stdout: string): { nvidia: string[]; amd: string[] } {
  const out = { nvidia: [] as string[], amd: [] as string[] };
  for (const line of stdout.split("\n")) {
    const m = /^\S+\s+(?:VGA compatible controller|3D controller|Display controller)(?: \[[0-9a-f]{4}\])?:\s*(.+?)\s*$/.exec(line);
    if (!m) continue;
    const device = m[1]!.replace(/\s*\(rev [0-9a-f]+\)$/, "");
    if (/^NVIDIA Corporation/.test(device)) out.nvidia.push(/\[([^\]]+)\]/.exec(device)?.[1] ?? device.replace(/^NVIDIA Corporation\s*/, ""));
    else if (/^Advanced Micro Devices, Inc\. \[AMD\/ATI\]/.test(device)) {
      const rest = device.replace(/^Advanced Micro Devices, Inc\. \[AMD\/ATI\]\s*/, "");
      out.amd.push(/\[([^\]]+)\]/.exec(rest)?.[1] ?? rest);
    }
  }
  return out;
}

/** system_profiler SPDisplaysDataType: each "Chipset Model" with its "Vendor". */
export function parseSystemProfilerDisplays(stdout: string): Array<{ name: string; vendor: string }> {
  const devices: Array<{ name: string; vendor: string }> = [];
  for (const block of stdout.split(/^\s{4}\S.*:\s*$/m)) {
    const name = /^\s*Chipset Model:\s*(.+?)\s*$/m.exec(block)?.[1];
    if (!name) continue;
    devices.push({ name, vendor: /^\s*Vendor:\s*(.+?)\s*$/m.exec(block)?.[1] ?? "" });
  }
  return devices;
}

const NONE: GpuDetection = { vendor: "none", devices: [], source: "", driverLoaded: false };

export async function detectGpu(run: CommandRunner, host: GpuHost): Promise<GpuDetection> {
  if (host.platform === "darwin") {
    const profiler = await run("system_profiler", ["SPDisplaysDataType"]);
    if (profiler.code === 0) {
      const devices = parseSystemProfilerDisplays(profiler.stdout);
      const apple = devices.filter((d) => /^Apple/.test(d.vendor) || /^Apple M/.test(d.name));
      if (apple.length > 0) return { vendor: "apple", devices: apple.map((d) => d.name), source: "system_profiler", driverLoaded: true };
      const amd = devices.filter((d) => /^AMD/.test(d.vendor) || /^AMD/.test(d.name));
      if (amd.length > 0) return { vendor: "amd", devices: amd.map((d) => d.name), source: "system_profiler", driverLoaded: true };
      return { ...NONE, source: "system_profiler" };
    }
    return host.arch === "arm64" ? { vendor: "apple", devices: ["Apple Silicon"], source: "arch", driverLoaded: true } : NONE;
  }
  const smi = await run("nvidia-smi", ["-L"]);
  const procVersion = host.platform === "linux" ? host.readText("/proc/driver/nvidia/version") : undefined;
  const driver = procVersion !== undefined ? parseProcNvidiaVersion(procVersion) : undefined;
  if (smi.code === 0) {
    const devices = parseNvidiaSmiList(smi.stdout);
    if (devices.length > 0) return { vendor: "nvidia", devices, source: "nvidia-smi -L", driverLoaded: true, ...(driver ? { driver } : {}) };
  }
  if (procVersion !== undefined) return { vendor: "nvidia", devices: [], source: "/proc/driver/nvidia/version", driverLoaded: true, ...(driver ? { driver } : {}) };
  const rocminfo = await run("rocminfo", []);
  if (rocminfo.code === 0) {
    const devices = parseRocminfo(rocminfo.stdout);
    if (devices.length > 0) return { vendor: "amd", devices, source: "rocminfo", driverLoaded: true };
  }
  const rocmSmi = await run("rocm-smi", ["--showproductname"]);
  if (rocmSmi.code === 0) {
    const devices = parseRocmSmiProductNames(rocmSmi.stdout);
    if (devices.length > 0) return { vendor: "amd", devices, source: "rocm-smi", driverLoaded: true };
  }
  if (host.platform === "linux") {
    const lspci = await run("lspci", []);
    if (lspci.code === 0) {
      const found = parseLspci(lspci.stdout);
      // A discrete NVIDIA card wins over an AMD iGPU beside it; the driver is not loaded (nvidia-smi did not answer).
      if (found.nvidia.length > 0) return { vendor: "nvidia", devices: found.nvidia, source: "lspci", driverLoaded: false };
      if (found.amd.length > 0) return { vendor: "amd", devices: found.amd, source: "lspci", driverLoaded: false };
      return { ...NONE, source: "lspci" };
    }
  }
  return NONE;
}
