import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createBackendFromConfig, createNodeLogger, loadNodeConfig, signerFromKeyFile, type CommandRunner } from "@tessera/node";
import { doctorExitCode, formatResults, runDoctor, type CheckResult, type DoctorDeps } from "../../src/doctor/run-doctor.js";
import { GPU_8GB, startInventoryCluster, type InventoryCluster } from "./inventory-cluster.js";

let c: InventoryCluster | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await c?.close();
  c = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Recorded `nvidia-smi --query-gpu=driver_version,name --format=csv,noheader` of an RTX 4090 box. */
const NVIDIA: CommandRunner = async (cmd) => (cmd === "nvidia-smi" ? { code: 0, stdout: "550.54.14, NVIDIA GeForce RTX 4090\n" } : { code: 127, stdout: "" });

function deps(home: string, over: Partial<DoctorDeps> = {}): DoctorDeps {
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  return {
    cliVersion: "0.1.0",
    nodeVersion: "v20.11.1",
    loadConfig: () => loadNodeConfig({ home, env: {} }),
    readSigner: signerFromKeyFile,
    fetch: (input, init) => fetch(input, init),
    nowMs: () => Date.now(),
    run: NVIDIA,
    platform: "linux",
    diskSpace: () => ({ freeBytes: 500e9, totalBytes: 1000e9 }),
    openBackend: (config) => createBackendFromConfig(config, { fetch: (input, init) => fetch(input, init), logger }),
    hardware: async () => GPU_8GB,
    timeoutMs: 2000,
    ...over,
  };
}

const byName = (results: CheckResult[]) => Object.fromEntries(results.map((r) => [r.name, r]));

describe("tessera doctor", () => {
  it("a healthy node: every check OK, one line each, exit 0", async () => {
    c = await startInventoryCluster({ settings: { served_models: ["qwen2.5:1.5b"] } });
    const results = await runDoctor(deps(c.home));
    expect(results.map((r) => r.name)).toEqual([
      "CLI version", "config file", "keypair", "coordinator reachable", "clock skew", "node registered", "node online", "backend reachable", "models in sync", "disk space", "GPU driver",
    ]);
    expect(results.filter((r) => r.status !== "OK")).toEqual([]);
    const r = byName(results);
    expect(r["coordinator reachable"]!.detail).toMatch(/^http:\/\/127\.0\.0\.1:\d+ \(\d+ ms\)$/);
    expect(r["node online"]!.detail).toMatch(/^online, last heartbeat \d+ s ago$/);
    expect(r["models in sync"]!.detail).toBe("advertising qwen2.5:1.5b");
    expect(r["GPU driver"]!.detail).toBe("NVIDIA 550.54.14 (NVIDIA GeForce RTX 4090)");
    expect(formatResults(results)).toMatch(/^\[OK\]   CLI version +tessera 0\.1\.0 \(Node v20\.11\.1\)$/m);
    expect(doctorExitCode(results)).toBe(0);
  });

  it("FAIL for clock skew beyond 30 s (injected clock), WARN for a few seconds", async () => {
    c = await startInventoryCluster({ settings: { served_models: ["qwen2.5:1.5b"] } });
    const ahead = await runDoctor(deps(c.home, { nowMs: () => Date.now() + 120_000 }));
    expect(byName(ahead)["clock skew"]).toMatchObject({ status: "FAIL", detail: expect.stringMatching(/^\+1(19|20|21) s against the coordinator: signed requests are refused beyond 30 s/) });
    expect(doctorExitCode(ahead)).toBe(1);
    const behind = await runDoctor(deps(c.home, { nowMs: () => Date.now() - 10_000 }));
    expect(byName(behind)["clock skew"]).toMatchObject({ status: "WARN", detail: expect.stringMatching(/^-(9|10|11) s against/) });
  });

  it("FAIL for an unreachable backend; WARN for models out of sync", async () => {
    c = await startInventoryCluster({ settings: { served_models: ["qwen2.5:1.5b", "mistral:7b"] } });
    const drift = byName(await runDoctor(deps(c.home)));
    expect(drift["models in sync"]).toMatchObject({ status: "WARN", detail: expect.stringMatching(/served_models lists mistral:7b but backend ollama does not have it/) });
    await c.ollama.http.close();
    const results = await runDoctor(deps(c.home));
    expect(byName(results)["backend reachable"]).toMatchObject({ status: "FAIL", detail: expect.stringMatching(/^ollama: /) });
    expect(formatResults(results)).toMatch(/^\[FAIL\] backend reachable +ollama: /m);
    expect(doctorExitCode(results)).toBe(1);
  });

  it("no config, no keys, no coordinator: FAIL lines that say what to run; driver and disk from injected runners", async () => {
    const home = mkdtempSync(join(tmpdir(), "tessera-doctor-"));
    dirs.push(home);
    const brokenDriver: CommandRunner = async (cmd) => (cmd === "nvidia-smi" ? { code: 9, stdout: "" } : { code: 127, stdout: "" });
    const results = byName(await runDoctor(deps(home, { run: brokenDriver, diskSpace: () => ({ freeBytes: 1e9, totalBytes: 100e9 }), loadConfig: () => loadNodeConfig({ home, env: {}, flags: { coordinator_url: "http://127.0.0.1:9" } }) })));
    expect(results["config file"]).toMatchObject({ status: "FAIL", detail: expect.stringMatching(/run `tessera setup`/) });
    expect(results["keypair"]!.status).toBe("FAIL");
    expect(results["coordinator reachable"]).toMatchObject({ status: "FAIL", detail: expect.stringMatching(/unreachable/) });
    expect(results["disk space"]).toMatchObject({ status: "FAIL", detail: expect.stringMatching(/^1\.0 GB free of 100\.0 GB/) });
    expect(results["GPU driver"]).toMatchObject({ status: "FAIL", detail: expect.stringMatching(/nvidia-smi failed \(exit 9\)/) });
    const cpuOnly = byName(await runDoctor(deps(home, { run: async () => ({ code: 127, stdout: "" }) })));
    expect(cpuOnly["GPU driver"]!.status).toBe("WARN");
  });

  it("as a process: exits 1 on any FAIL and prints one line per check", () => {
    const home = mkdtempSync(join(tmpdir(), "tessera-doctor-"));
    dirs.push(home);
    const bin = fileURLToPath(new URL("../../bin/tessera.js", import.meta.url));
    const env = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "ollama", OLLAMA_HOST: "127.0.0.1:9", TESSERA_COORDINATOR_URL: "http://127.0.0.1:9" };
    const run = spawnSync(process.execPath, [bin, "doctor", "--home", home], { encoding: "utf8", env, timeout: 60_000 });
    expect(run.status).toBe(1);
    // The real process adds the stage runtime line (its probe is a production seam; the other tests here leave it out).
    expect(run.stdout.trim().split("\n")).toHaveLength(12);
    expect(run.stdout).toMatch(/^\[OK\] +stage runtime +stage_backend = wasm: spans run on wasm/m);
    expect(run.stdout).toMatch(/^\[FAIL\] config file/m);
    expect(run.stdout).toMatch(/^\[FAIL\] backend reachable +ollama: /m);
  });
});
