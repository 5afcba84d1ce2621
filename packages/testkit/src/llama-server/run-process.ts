import { spawn } from "node:child_process";

/** Runs a command asynchronously; each output line goes to `onLine`; resolves with the exit code and the last lines. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; onLine?: (line: string) => void } = {},
): Promise<{ code: number | null; tail: string; error?: Error }> {
  return new Promise((resolve) => {
    const lines: string[] = [];
    let child;
    try {
      child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      resolve({ code: null, tail: "", error: err as Error });
      return;
    }
    let pending = "";
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString("utf8");
      const parts = pending.split(/\r?\n/);
      pending = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 40) lines.shift();
        options.onLine?.(line);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (error) => resolve({ code: null, tail: lines.join("\n"), error }));
    child.on("close", (code) => {
      if (pending) lines.push(pending);
      resolve({ code, tail: lines.join("\n") });
    });
  });
}
