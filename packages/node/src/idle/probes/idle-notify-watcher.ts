import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

/**
 * Wayland has no "how long since the last input" query in its core protocols: the compositor *notifies* a subscribed
 * client (ext-idle-notify-v1, implemented by sway, Hyprland, KDE Plasma 6, river, niri, …) that the seat has been idle
 * for a timeout, and again when input resumes. `swayidle` is the standard client for it; run as
 *
 *   swayidle timeout <T> 'echo idle' resume 'echo active'
 *
 * it prints `idle` after T seconds without input and `active` at the next input (its commands inherit its stdout).
 * This watcher keeps one such process and turns its events into the input idle time the policy reads:
 * - after `idle` (seen at t): the last input was T before t, so idle for `now - t + T`;
 * - after `active`, and before the first event: input within the last T seconds, reported as 0 (active). Before its
 *   first event the watcher cannot know better, and counting the owner as present is the safe side;
 * - when swayidle is missing or exits (a compositor without ext-idle-notify): cannot tell (undefined).
 * T is the policy's input_idle_threshold (rounded up to whole seconds), so "active" means exactly what the threshold
 * means for the other probes.
 */
export interface LineProcess {
  onLine(listener: (line: string) => void): void;
  /** Called once when the process cannot start or has exited. */
  onExit(listener: () => void): void;
  kill(): void;
}

/** `env`: variables set on top of this process's own (the session's WAYLAND_DISPLAY when the daemon has none). */
export type LineSpawner = (command: string, args: readonly string[], env?: Record<string, string>) => LineProcess;

export interface IdleNotifyWatcher {
  /** Input idle time in ms; undefined: cannot tell. Starts the watcher on first use. */
  inputIdleMs(): number | undefined;
  close(): void;
}

export const SWAYIDLE = "swayidle";

export function swayidleArgs(thresholdMs: number): string[] {
  return ["timeout", String(Math.max(1, Math.ceil(thresholdMs / 1000))), "echo idle", "resume", "echo active"];
}

export function createIdleNotifyWatcher(deps: { spawn: LineSpawner; now: () => number; thresholdMs: number; env?: Record<string, string> }): IdleNotifyWatcher {
  const timeoutMs = Math.max(1, Math.ceil(deps.thresholdMs / 1000)) * 1000;
  let child: LineProcess | undefined;
  let dead = false;
  /** When the seat was last reported idle (clock ms of the event); undefined: active, or no event yet. */
  let idleEventAt: number | undefined;
  const start = () => {
    child = deps.spawn(SWAYIDLE, swayidleArgs(deps.thresholdMs), ...(deps.env ? [deps.env] : []));
    child.onLine((line) => {
      const word = line.trim();
      if (word === "idle") idleEventAt = deps.now();
      else if (word === "active") idleEventAt = undefined;
    });
    child.onExit(() => {
      dead = true;
      child = undefined;
    });
  };
  return {
    inputIdleMs() {
      if (dead) return undefined;
      if (!child) start();
      if (dead) return undefined;
      return idleEventAt === undefined ? 0 : deps.now() - idleEventAt + timeoutMs;
    },
    close() {
      dead = true;
      child?.kill();
      child = undefined;
    },
  };
}

/** The production spawner: the process's stdout line by line; a spawn error (ENOENT) counts as an exit. */
export const spawnLines: LineSpawner = (command, args, env) => {
  const proc = spawn(command, [...args], { stdio: ["ignore", "pipe", "ignore"], ...(env ? { env: { ...process.env, ...env } } : {}) });
  proc.unref();
  const exitListeners: Array<() => void> = [];
  let exited = false;
  const exit = () => {
    if (exited) return;
    exited = true;
    for (const listener of exitListeners) listener();
  };
  proc.once("error", exit);
  proc.once("exit", exit);
  const lines = createInterface({ input: proc.stdout });
  return {
    onLine: (listener) => void lines.on("line", listener),
    onExit: (listener) => void (exited ? listener() : exitListeners.push(listener)),
    kill: () => void proc.kill(),
  };
};
