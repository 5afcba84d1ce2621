import { type ChildProcessByStdio, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeLlamaCppVersion, writeGpuRuntimeRecord } from "@tessera/node";
import { TESSERA_BIN, freePort, makeTinyModel } from "@tessera/testkit";

/**
 * The embedded engine of a real `tessera doctor` process finds the GPU build recorded in its home's data dir:
 * node-llama-cpp's own lookup imports the package from there (a stand-in that leaves a marker; this machine has no
 * GPU), the build cannot load, the engine falls back to the CPU build, and doctor says so.
 */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-gpu-doctor-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(process.execPath, [TESSERA_BIN, ...args], {
    env: { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

describe.runIf(process.platform === "linux" && process.arch === "x64")("tessera doctor with a GPU build in the data dir", () => {
  it("reports the CPU fallback and why, after node-llama-cpp looked the build up in the data dir", async () => {
    const home = join(dir, "node");
    const model = (await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 3, vocab: "spm", name: "tiny-chat" })).path;
    const init = await tessera("init", "--home", home, "--coordinator", `http://127.0.0.1:${await freePort()}`, "--backend", "embedded", "--model", model);
    expect(init.code).toBe(0);

    const doctorCpu = JSON.parse((await tessera("doctor", "--home", home, "--json")).stdout) as { checks: Array<{ name: string; status: string; detail: string }> };
    expect(doctorCpu.checks.find((c) => c.name === "embedded build")).toMatchObject({ detail: expect.stringMatching(/^CPU build/) });

    const version = nodeLlamaCppVersion();
    const runtimeDir = join(home, "data", "gpu-runtime");
    const pkgDir = join(runtimeDir, "node_modules", "@node-llama-cpp", "linux-x64-vulkan");
    const marker = join(dir, "imported.txt");
    mkdirSync(join(pkgDir, "bins"), { recursive: true });
    writeFileSync(join(pkgDir, "package.json"), JSON.stringify({ name: "@node-llama-cpp/linux-x64-vulkan", version, type: "module", exports: { ".": "./index.js" } }));
    writeFileSync(
      join(pkgDir, "index.js"),
      `import { appendFileSync } from "node:fs";\nappendFileSync(${JSON.stringify(marker)}, "imported\\n");\nexport function getBinsDir() { return { binsDir: ${JSON.stringify(join(pkgDir, "bins"))}, packageVersion: ${JSON.stringify(version)} }; }\n`,
    );
    writeGpuRuntimeRecord(runtimeDir, { gpu: "vulkan", packages: ["@node-llama-cpp/linux-x64-vulkan"], version, installedAt: new Date().toISOString() });

    const doctor = await tessera("doctor", "--home", home, "--json");
    const checks = (JSON.parse(doctor.stdout) as typeof doctorCpu).checks;
    expect(checks.find((c) => c.name === "backend reachable")).toMatchObject({ status: "OK", detail: "embedded" });
    expect(checks.find((c) => c.name === "embedded build")).toEqual({
      name: "embedded build",
      status: "WARN",
      detail: expect.stringMatching(/^CPU build \(the vulkan build did not load: .+\); `.*tessera gpu setup` reinstalls it$/),
    });
    expect(readFileSync(marker, "utf8")).toMatch(/^imported\n/);
  }, 90_000);
});
