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
 * `env`: variables set on top of this process's own for every command (the idle probe runs the display tools with the
 * graphical session's DISPLAY / WAYLAND_DISPLAY when the daemon has none of its own).
 */
export function createCommandRunner(timeoutMs = 5_000, env?: Record<string, string>): CommandRunner {
  const childEnv = env ? { ...process.env, ...env } : undefined;
  return (command, args) =>
    new Promise((resolve) => {
      execFile(command, [...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024, ...(childEnv ? { env: childEnv } : {}) }, (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: string | number };
        resolve({ code: e.code === "ENOENT" ? 127 : typeof e.code === "number" ? e.code : 1, stdout: String(stdout ?? ""), stderr: String(stderr ?? "") });
      });
    });
}
