import type { CommandRunner } from "../../hardware/command-runner.js";

/**
 * Where a daemon without a display of its own finds the user's graphical session. Run as a systemd user service the
 * daemon starts with the user manager, before (or without) the desktop exporting DISPLAY / WAYLAND_DISPLAY into it,
 * so its own environment says "no display" for ever and, with `unknown_means_idle`, the node would serve while its
 * owner types. The session's variables are in the user manager's environment once the desktop has started
 * (`systemctl --user show-environment`: GNOME, Plasma and most sessions import them), so the probe reads them there,
 * again every `ttlMs` (a session that starts, ends or moves to another display is followed).
 */
export const SESSION_VARIABLES = ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"] as const;

/** `systemctl --user show-environment`: one `NAME=value` a line (values with spaces come $'…'-quoted: skipped). */
export function parseSessionEnvironment(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const name = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if ((SESSION_VARIABLES as readonly string[]).includes(name) && value !== "" && !value.startsWith("$'")) out[name] = value;
  }
  return out;
}

export interface SessionEnvironment {
  /** The session's display variables; undefined when there is no graphical session to be found. */
  read(): Promise<Record<string, string> | undefined>;
}

export function userManagerSession(run: CommandRunner, now: () => number, ttlMs = 10_000): SessionEnvironment {
  let cached: { at: number; env: Record<string, string> | undefined } | undefined;
  return {
    async read() {
      if (cached && now() - cached.at < ttlMs) return cached.env;
      const result = await run("systemctl", ["--user", "show-environment"]);
      const env = result.code === 0 ? parseSessionEnvironment(result.stdout) : {};
      cached = { at: now(), env: env.DISPLAY || env.WAYLAND_DISPLAY ? env : undefined };
      return cached.env;
    },
  };
}
