import { execFile } from "node:child_process";

/**
 * The seam between hardware detection and the machine: tests pass recorded outputs, production runs the real
 * tools. A missing tool is not an error: it answers `code: 127` (as a shell would), and detection moves on.
 */
export interface CommandResult {
  code: number;
  stdout: string;
  /** What the tool said on stderr, for error messages (recorded outputs may leave it out). */
  stderr?: string;
}

export type CommandRunner = (command: string, args: readonly string[]) => Promise<CommandResult>;

/**
 * How long a tool found missing is answered as missing without looking again. The idle probe reads the machine every
 * second and the heartbeat every 30 s, and a machine without nvidia-smi or rocm-smi would otherwise start two
 * processes that fail each time (each a fork of the daemon); a tool installed meanwhile (a new GPU driver) is found
 * within a minute.
 */
export const MISSING_TOOL_RECHECK_MS = 60_000;

/**
 * `env`: variables set on top of this process's own for every command (the idle probe runs the display tools with the
 * graphical session's DISPLAY / WAYLAND_DISPLAY when the daemon has none of its own). `now`: the clock (ms) for
 * `MISSING_TOOL_RECHECK_MS`.
 */
export function createCommandRunner(timeoutMs = 5_000, env?: Record<string, string>, now: () => number = Date.now): CommandRunner {
  const childEnv = env ? { ...process.env, ...env } : undefined;
  /** When each command was last found missing. */
  const missingSince = new Map<string, number>();
  return (command, args) => {
    const missing = missingSince.get(command);
    if (missing !== undefined && now() - missing < MISSING_TOOL_RECHECK_MS) return Promise.resolve({ code: 127, stdout: "", stderr: "" });
    return new Promise((resolve) => {
      execFile(command, [...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024, ...(childEnv ? { env: childEnv } : {}) }, (err, stdout, stderr) => {
        const code = (err as (NodeJS.ErrnoException & { code?: string | number }) | null)?.code;
        if (code === "ENOENT") missingSince.set(command, now());
        else missingSince.delete(command);
        if (!err) return resolve({ code: 0, stdout, stderr });
        resolve({ code: code === "ENOENT" ? 127 : typeof code === "number" ? code : 1, stdout: String(stdout ?? ""), stderr: String(stderr ?? "") });
      });
    });
  };
}
