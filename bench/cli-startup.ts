/**
 * cli-startup: how long a newcomer waits for the CLI. `tessera --version` against `node -e 0` (the floor of any Node
 * command on this machine), interleaved, `--runs` times each; then the seconds from `tessera coordinator start` to
 * its first `200` on `/healthz`, `--ready-runs` times. Medians, with the spread. Both run packages/cli/bin/tessera.js as
 * a user's install does, on the compiled dist/ (`npm run bench` builds it first; the bench refuses to time tsx's
 * fallback for a checkout that was never built).
 *
 *   npm run bench -- cli-startup [--runs 15] [--ready-runs 3]
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { TESSERA_BIN, freePort } from "@tessera/testkit";
import { fmt, percentile } from "./lib-stats.js";

const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_URL: "" };

function timed(args: string[]): number {
  const start = process.hrtime.bigint();
  const run = spawnSync(process.execPath, args, { env: ENV, stdio: "ignore" });
  if (run.status !== 0) throw new Error(`cli-startup: ${args.join(" ")} exited ${run.status}`);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function coordinatorReady(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-startup-"));
  const port = await freePort();
  const start = process.hrtime.bigint();
  const child = spawn(process.execPath, [TESSERA_BIN, "coordinator", "start", "--open", "--port", String(port), "--data-dir", dir, "--log-level", "warn"], { env: ENV, stdio: "ignore" });
  try {
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) return Number(process.hrtime.bigint() - start) / 1e9;
      } catch {
        // not listening yet
      }
      if (child.exitCode !== null) throw new Error(`cli-startup: the coordinator exited (${child.exitCode}) before answering`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { runs: { type: "string", default: "15" }, "ready-runs": { type: "string", default: "3" } } });
  const runs = Number(values.runs);
  const readyRuns = Number(values["ready-runs"]);
  if (!(Number.isInteger(runs) && runs > 0 && Number.isInteger(readyRuns) && readyRuns > 0)) throw new Error("cli-startup: --runs and --ready-runs are positive integers");
  const compiled = join(dirname(TESSERA_BIN), "../dist/main.js");
  if (!existsSync(compiled)) throw new Error(`cli-startup: ${compiled} is missing: run npm run build (the bench times the compiled CLI)`);
  timed([TESSERA_BIN, "--version"]); // warm the file cache: a newcomer's second command is the one to judge
  const node: number[] = [];
  const version: number[] = [];
  for (let i = 0; i < runs; i++) {
    node.push(timed(["-e", "0"]));
    version.push(timed([TESSERA_BIN, "--version"]));
  }
  const ready: number[] = [];
  for (let i = 0; i < readyRuns; i++) ready.push(await coordinatorReady());
  const med = (v: number[]) => percentile(v, 50);
  console.log(`node -e 0:          median ${fmt(med(node))} s (${fmt(Math.min(...node))}–${fmt(Math.max(...node))})`);
  console.log(`tessera --version:  median ${fmt(med(version))} s (${fmt(Math.min(...version))}–${fmt(Math.max(...version))})`);
  console.log(`coordinator ready:  median ${fmt(med(ready))} s (${fmt(Math.min(...ready))}–${fmt(Math.max(...ready))})`);
  console.log(`RESULT cli_version_vs_node ${fmt(med(version) / med(node), 2)}`);
  console.log(`RESULT coordinator_ready_s ${fmt(med(ready), 2)}`);
  console.log(`RESULT coordinator_ready_vs_node ${fmt(med(ready) / med(node), 1)}`);
}
