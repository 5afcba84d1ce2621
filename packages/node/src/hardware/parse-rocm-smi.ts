import type { GpuStats } from "@tessera/protocol";

/** The query Tessera runs: product name, VRAM, use, temperature and power, as JSON. */
export const ROCM_SMI_ARGS = ["--showproductname", "--showmeminfo", "vram", "--showuse", "--showtemp", "--showpower", "--json"] as const;

/**
 * `rocm-smi --json` prints one object per card (`card0`, `card1`, …, plus `system`), every value a string:
 * `"Card series": "Radeon RX 7900 XTX"`, `"VRAM Total Memory (B)": "25753026560"`, `"VRAM Total Used Memory (B)"`,
 * `"GPU use (%)"`, `"Temperature (Sensor edge) (C)"`, and power as `"Average Graphics Package Power (W)"` or, on
 * newer ROCm, `"Current Socket Graphics Package Power (W)"`. Key spellings vary by ROCm version, so fields are
 * matched by pattern.
 */
export function parseRocmSmi(stdout: string): GpuStats[] {
  let json: Record<string, Record<string, string>>;
  try {
    json = JSON.parse(stdout) as Record<string, Record<string, string>>;
  } catch {
    return [];
  }
  const gpus: GpuStats[] = [];
  for (const [key, card] of Object.entries(json)) {
    if (!/^card\d+$/.test(key) || card === null || typeof card !== "object") continue;
    const find = (re: RegExp): string | undefined => Object.entries(card).find(([k]) => re.test(k))?.[1];
    const totalB = num(find(/^VRAM Total Memory \(B\)$/i));
    if (totalB === undefined) continue;
    const name = find(/^Card (series|SKU)$/i) ?? find(/^Card model$/i) ?? "AMD GPU";
    const stat: GpuStats = {
      name,
      memory_total_mb: Math.round(totalB / 1024 / 1024),
      memory_used_mb: Math.round((num(find(/^VRAM Total Used Memory \(B\)$/i)) ?? 0) / 1024 / 1024),
      utilization_pct: Math.min(100, Math.max(0, num(find(/^GPU use \(%\)$/i)) ?? 0)),
    };
    const temp = num(find(/^Temperature \(Sensor (edge|junction)\) \(C\)$/i));
    if (temp !== undefined) stat.temperature_c = temp;
    const power = num(find(/Graphics Package Power \(W\)$/i));
    if (power !== undefined) stat.power_w = power;
    gpus.push(stat);
  }
  return gpus;
}

function num(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}
