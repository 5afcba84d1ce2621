/**
 * bench/gpu-check.sh, the GPU span check run on GPU machines: when its own backend probe fails it exits 1 and says so,
 * instead of reporting as a machine where no GPU backend initialised (exit 0). The probe is swapped through the
 * script's bundle seam (TESSERA_GPU_CHECK_APP names the folder its probe and bench run from).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const script = resolve(import.meta.dirname, "../../../bench/gpu-check.sh");
let app: string;
beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), "gpu-check-"));
});
afterAll(() => rmSync(app, { recursive: true, force: true }));

function run(probe: string): { status: number | null; stdout: string; stderr: string } {
  writeFileSync(join(app, "lib-gpu-probe.js"), probe);
  const r = spawnSync("bash", [script], { env: { ...process.env, TESSERA_GPU_CHECK_APP: app }, encoding: "utf8", timeout: 90_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("bench/gpu-check.sh", () => {
  it("exits 1 with a clear message when its backend probe fails", () => {
    const r = run(`console.log("vulkan\\tno\\tno build"); process.exit(3);`);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/gpu-check: FAILED: the backend probe .* exited 3, so which GPU backends initialise is unknown/);
    expect(r.stdout).not.toMatch(/RESULT gpu_backends_initialised/);
  }, 100_000);

  it("exits 0 and says why when the probe finds no backend that initialises", () => {
    const r = run(`console.log("vulkan\\tno\\tno build installed");`);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/RESULT gpu_backends_initialised 0/);
    expect(r.stdout).toMatch(/vulkan: no build installed/);
  }, 100_000);
});
