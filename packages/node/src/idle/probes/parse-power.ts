/** Whether the machine runs on battery, from each OS's tool (recorded outputs in fixtures/). Pure. */

/**
 * Linux `/sys/class/power_supply/<name>/{type,online,status}` as read: a mains supply that is online means not on
 * battery; else a battery `Discharging` means on battery. No supplies at all (a server, a desktop): cannot tell.
 */
export function parsePowerSupplies(supplies: Array<{ type?: string; online?: string; status?: string }>): boolean | undefined {
  const mains = supplies.filter((s) => s.type?.trim() === "Mains" || s.type?.trim() === "USB");
  const batteries = supplies.filter((s) => s.type?.trim() === "Battery");
  if (mains.some((s) => s.online?.trim() === "1")) return false;
  if (batteries.some((s) => s.status?.trim() === "Discharging")) return true;
  if (mains.length > 0 && mains.every((s) => s.online?.trim() === "0") && batteries.length > 0) return true;
  return batteries.length > 0 || mains.length > 0 ? false : undefined;
}

/** macOS `pmset -g batt`: `Now drawing from 'Battery Power'` or `'AC Power'`. */
export function parsePmsetBatt(stdout: string): boolean | undefined {
  const m = /drawing from '([^']+)'/.exec(stdout);
  if (!m) return undefined;
  return m[1] === "Battery Power";
}

/**
 * Windows `(Get-CimInstance Win32_Battery).BatteryStatus`: 1 = discharging (on battery), 2 = on AC, others are
 * charging states on AC; no output means no battery (a desktop): cannot tell.
 */
export function parseWin32BatteryStatus(stdout: string): boolean | undefined {
  const codes = stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
  if (codes.length === 0) return undefined;
  return codes.includes(1);
}
