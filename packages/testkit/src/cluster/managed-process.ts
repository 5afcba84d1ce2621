import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";

/**
 * A real child process with its output kept (in memory and in a log file) so tests can wait for a line and show
 * the log when something fails.
 */
export class ManagedProcess {
  readonly child: ChildProcess;
  private output = "";
  private readonly log: WriteStream | undefined;
  private readonly waiters: Array<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile?: string } = {},
  ) {
    this.log = options.logFile ? createWriteStream(options.logFile, { flags: "a" }) : undefined;
    this.child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      this.output += text;
      if (this.output.length > 2_000_000) this.output = this.output.slice(-1_000_000);
      this.log?.write(text);
      for (const w of [...this.waiters]) {
        const m = this.output.match(w.pattern);
        if (m) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    };
    this.child.stdout!.on("data", onData);
    this.child.stderr!.on("data", onData);
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get logText(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first match of `pattern` in the output so far or to come. */
  waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const m = this.output.match(pattern);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms; output:\n${this.output.slice(-4000)}`)), timeoutMs);
      this.waiters.push({ pattern, resolve: (match) => (clearTimeout(timer), resolve(match)) });
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? signal}) before printing ${pattern}; output:\n${this.output.slice(-4000)}`));
      });
    });
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.log?.end();
  }
}
