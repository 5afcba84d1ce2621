/** The user's input idle time from each OS's tool, in milliseconds (recorded outputs in fixtures/). Pure. */

/** X11 `xprintidle` (ms) and `xssstate -i` (ms): one integer. */
export function parseIdleMs(stdout: string): number | undefined {
  const text = stdout.trim();
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** macOS `ioreg -c IOHIDSystem`: `"HIDIdleTime" = 95123456789` in nanoseconds. */
export function parseHidIdleTime(stdout: string): number | undefined {
  const m = /"HIDIdleTime"\s*=\s*(\d+)/.exec(stdout);
  return m ? Math.floor(Number(m[1]) / 1e6) : undefined;
}

/**
 * Windows: PowerShell calling user32 `GetLastInputInfo` and printing `Environment.TickCount - dwTime` (ms). The
 * script is `WINDOWS_IDLE_SCRIPT` (machine-probe.ts); its output is one integer.
 */
export const parseWindowsIdleMs = parseIdleMs;

/** The `gdbus call` that asks GNOME's compositor (Mutter, on Wayland and X11 alike) for the input idle time in ms. */
export const MUTTER_IDLETIME_ARGS = [
  "call", "--session", "--dest", "org.gnome.Mutter.IdleMonitor", "--object-path", "/org/gnome/Mutter/IdleMonitor/Core",
  "--method", "org.gnome.Mutter.IdleMonitor.GetIdletime",
] as const;

/** `gdbus call … GetIdletime`: the GVariant text `(uint64 4242,)`, in milliseconds. */
export function parseMutterIdletime(stdout: string): number | undefined {
  const m = /^\(uint64 (\d+),\)$/.exec(stdout.trim());
  return m ? Number(m[1]) : undefined;
}
