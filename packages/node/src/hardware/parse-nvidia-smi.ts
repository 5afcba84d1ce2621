import type { GpuStats } from "@tessera/protocol";

/** The exact query Tessera runs; the parser below reads its columns in this order. */
export const NVIDIA_SMI_ARGS = [
  "--query-gpu=name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw",
  "--format=csv,noheader,nounits",
] as const;

/**
 * One line per GPU: `NVIDIA GeForce RTX 4090, 24564, 1021, 3, 41, 27.53`. Memory in MiB, utilization in %,
 * temperature in °C, power in W. Fields a GPU cannot report read `[N/A]` (power on many laptop and MIG GPUs) and
 * become undefined; a line that is not a GPU row is skipped.
 */
export function parseNvidiaSmi(stdout: string): GpuStats[] {
  const gpus: GpuStats[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const cols = line.split(",").map((c) => c.trim());
    if (cols.length < 4) continue;
    const [name, total, used, util, temp, power] = cols;
    const memTotal = num(total);
    if (!name || memTotal === undefined) continue;
    const stat: GpuStats = {
      name,
      memory_total_mb: memTotal,
      memory_used_mb: num(used) ?? 0,
      utilization_pct: Math.min(100, Math.max(0, num(util) ?? 0)),
    };
    const t = num(temp);
    if (t !== undefined) stat.temperature_c = t;
    const p = num(power);
    if (p !== undefined) stat.power_w = p;
    gpus.push(stat);
  }
  return gpus;
}

function num(value: string | undefined): number | undefined {
  if (value === undefined || value === "" || /N\/A|not supported/i.test(value)) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}
