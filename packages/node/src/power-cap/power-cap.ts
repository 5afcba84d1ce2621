import type { CommandRunner } from "../hardware/command-runner.js";

/**
 * `[limits] max_power_watts`: the GPU power cap, applied with `nvidia-smi -pl <W>` when the daemon starts. Setting a
 * power limit needs root on most drivers (and is refused on many laptop and consumer boards), so failing to apply it
 * is a warning, never a reason not to start; `tessera doctor` compares the limit in force with the setting.
 * Only NVIDIA: rocm-smi's power cap needs root too and is left to the operator (doctor says so).
 */
export const POWER_LIMIT_QUERY = ["--query-gpu=power.limit,power.min_limit,power.max_limit", "--format=csv,noheader,nounits"] as const;

export interface PowerLimits {
  /** Watts; NaN where the board reports [N/A]. */
  limit: number;
  min: number;
  max: number;
}

export function parsePowerLimits(stdout: string): PowerLimits[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line) => {
      const [limit, min, max] = line.split(",").map((v) => Number.parseFloat(v.trim()));
      return { limit: limit ?? NaN, min: min ?? NaN, max: max ?? NaN };
    });
}

export interface PowerCapResult {
  applied: boolean;
  /** One line for the log: what nvidia-smi did, or why not and how to do it by hand. */
  detail: string;
}

export async function applyPowerCap(run: CommandRunner, watts: number): Promise<PowerCapResult> {
  const result = await run("nvidia-smi", ["-pl", String(watts)]);
  const said = `${result.stdout}\n${result.stderr ?? ""}`;
  if (result.code === 127) return { applied: false, detail: `max_power_watts = ${watts} is set but nvidia-smi is not installed: no power cap applied` };
  const set = [...said.matchAll(/was set to ([\d.]+) W from ([\d.]+) W/g)];
  if (result.code === 0 && set.length > 0) {
    return { applied: true, detail: `GPU power cap ${watts} W applied with nvidia-smi -pl (${set.map((m) => `${Number(m[2])} → ${Number(m[1])} W`).join(", ")})` };
  }
  const reason =
    said.match(/not a valid power limit which should be between [\d.]+ W and [\d.]+ W/)?.[0] ??
    (/Insufficient Permissions|permission/i.test(said) ? "setting a power limit needs root" : undefined) ??
    (/not supported/i.test(said) ? "this GPU or driver does not allow changing its power limit" : undefined) ??
    (said.trim().split("\n")[0] || `exit ${result.code}`);
  return { applied: false, detail: `max_power_watts = ${watts} not applied: ${reason}; apply it as root with \`sudo nvidia-smi -pl ${watts}\` (it lasts until reboot)` };
}
