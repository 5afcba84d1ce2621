/**
 * Vitest global setup: brings every package's dist/ up to date (`tsc -b tsconfig.build.json`, incremental) before the
 * tests run, and again before each watch-mode rerun.
 *
 * Why: tests import the packages in-process from their sources (the `tessera-source` condition in vitest.config.ts),
 * but the ones that spawn the `tessera` command run packages/cli/bin/tessera.js, which runs the compiled dist/ as a
 * user's install does. Rebuilding here means a dev who edits src and runs `npx vitest run some.test.ts` never tests a
 * stale dist, and the spawned processes exercise the JavaScript that ships. It costs under a second when nothing
 * changed and a few seconds per changed package.
 *
 * A type error does not stop the tests: tsc (5.6 and later) still emits every project, so the error is printed as a
 * warning here and `npm run build` is where it fails.
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const root = fileURLToPath(new URL("..", import.meta.url));

function buildDist(): void {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const run = spawnSync(process.execPath, [tsc, "-b", "tsconfig.build.json"], { cwd: root, encoding: "utf8" });
  if (run.error) throw run.error;
  if (run.status !== 0) process.stderr.write(`vitest global setup: tsc -b tsconfig.build.json reported errors (dist/ is emitted anyway):\n${run.stdout}${run.stderr}\n`);
}

export default function setup(project: TestProject): void {
  buildDist();
  project.onTestsRerun(() => buildDist());
}
