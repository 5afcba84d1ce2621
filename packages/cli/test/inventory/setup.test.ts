import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createBackendFromConfig, createNodeLogger, initNode, type SettingFlags } from "@tessera/node";
import { verifyOperatorToken } from "@tessera/protocol";
import { runSetup, type SetupDeps } from "../../src/setup/run-setup.js";
import { parseTtl } from "../../src/commands/operator-token.js";
import { GPU_8GB, startInventoryCluster, type InventoryCluster } from "./inventory-cluster.js";

let c: InventoryCluster | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await c?.close();
  c = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "tessera-setup-"));
  dirs.push(d);
  return d;
}

function setupDeps(home: string, cluster: InventoryCluster, over: Partial<SetupDeps> & { answers?: string[] } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  const answers = [...(over.answers ?? [])];
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  const flags: SettingFlags = { ollama_host: cluster.ollama.url, coordinator_url: cluster.coordinator.url };
  const deps: SetupDeps = {
    home,
    flags,
    env: {},
    yes: true,
    ask: async (q) => (asked.push(q), answers.shift() ?? ""),
    hardware: async () => GPU_8GB,
    fetch: (input, init) => fetch(input, init),
    nowMs: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    openBackend: (config) => createBackendFromConfig(config, { fetch: (input, init) => fetch(input, init), logger }),
    out: { write: (s: string) => void out.push(s) },
    err: { write: (s: string) => void err.push(s) },
    ...over,
  };
  return { deps, out: () => out.join(""), err: () => err.join(""), asked };
}

async function networkModels(cluster: InventoryCluster): Promise<string[]> {
  const res = await fetch(`${cluster.coordinator.url}/api/v1/models`);
  return ((await res.json()) as { models: { id: string }[] }).models.map((m) => m.id);
}

describe("tessera setup", () => {
  it("--yes: detects the tier, finds Ollama, installs the tier's default model, writes a 0600 config and keys, registers", async () => {
    c = await startInventoryCluster({ withDaemon: false });
    const home = join(tmp(), "node");
    const { deps, out } = setupDeps(home, c);
    const result = await runSetup(deps);
    expect(result).toMatchObject({ backend: "ollama", model: "llama3.1:8b", registered: true });
    expect(out()).toMatch(/hardware +RTX 4060 \(8\.0 GiB\), 8 cores, 32 GiB RAM → tier >=8gb/);
    expect(out()).toMatch(/backend +ollama at http:\/\/127\.0\.0\.1:\d+ \(probed\)/);
    const toml = readFileSync(join(home, "node.toml"), "utf8");
    expect(toml).toMatch(/^backend = "ollama"$/m);
    expect(toml).toMatch(/^served_models = \["llama3\.1:8b"\]$/m);
    expect(statSync(join(home, "node.toml")).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "keys.toml")).mode & 0o777).toBe(0o600);
    expect(c.ollama.installed.has("llama3.1:8b")).toBe(true);
    expect(await networkModels(c)).toContain("llama3.1:8b");
  });

  it("interactive: the operator's answers win; re-running keeps the key and backs the old config up", async () => {
    c = await startInventoryCluster({ withDaemon: false });
    const home = join(tmp(), "node");
    const first = setupDeps(home, c, { yes: false, answers: ["qwen2.5:0.5b", "", "y"] });
    const one = await runSetup(first.deps);
    expect(first.asked).toEqual([expect.stringMatching(/^model to serve \(tier >=8gb default llama3\.1:8b\)/), "coordinator URL", "install qwen2.5:0.5b now? (y/n)"]);
    expect(one.model).toBe("qwen2.5:0.5b");
    const again = setupDeps(home, c, { yes: false, answers: ["", "", "y", "n"] });
    const two = await runSetup(again.deps);
    expect(two.nodeId).toBe(one.nodeId);
    expect(existsSync(join(home, "node.toml.bak"))).toBe(true);
    expect(again.asked).toContain(`${join(home, "node.toml")} exists; rewrite it with these settings? (y/n)`);
  });

  it("bad input: an oversized or malformed model, a bad coordinator URL, a declined rewrite; the config is left as it was", async () => {
    c = await startInventoryCluster({ withDaemon: false });
    const home = join(tmp(), "node");
    await expect(runSetup(setupDeps(home, c, { yes: false, answers: ["llama3.3:70b"] }).deps)).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/needs about .* GiB but this node has 8\.0 GiB/) });
    await expect(runSetup(setupDeps(home, c, { yes: false, answers: ["two words"] }).deps)).rejects.toMatchObject({ code: "bad_request" });
    const badUrl = setupDeps(home, c);
    badUrl.deps.flags = { ...badUrl.deps.flags, coordinator_url: "ftp://x" };
    await expect(runSetup(badUrl.deps)).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/--coordinator/) });
    expect(existsSync(join(home, "node.toml"))).toBe(false);

    await runSetup(setupDeps(home, c).deps);
    const before = readFileSync(join(home, "node.toml"), "utf8");
    await expect(runSetup(setupDeps(home, c, { yes: false, answers: ["", "", "n"] }).deps)).rejects.toMatchObject({ code: "conflict" });
    expect(readFileSync(join(home, "node.toml"), "utf8")).toBe(before);
  });

  it("an unreachable coordinator still writes the config and says to register later", async () => {
    c = await startInventoryCluster({ withDaemon: false });
    const home = join(tmp(), "node");
    const s = setupDeps(home, c);
    s.deps.flags = { ...s.deps.flags, coordinator_url: "http://127.0.0.1:9" };
    expect((await runSetup(s.deps)).registered).toBe(false);
    expect(s.err()).toMatch(/could not register with http:\/\/127\.0\.0\.1:9 .*run `tessera register`/);
  });
});

describe("tessera node operator-token", () => {
  it("parses lifetimes and refuses bad ones", () => {
    expect(parseTtl("90s")).toBe(90);
    expect(parseTtl("30m")).toBe(1800);
    expect(parseTtl("24h")).toBe(86400);
    for (const bad of ["0", "25h", "2d", "-5m", ""]) expect(() => parseTtl(bad)).toThrow(/--ttl must be a duration/);
  });

  it("prints a token the coordinator accepts for this node; a bad --ttl exits 2", () => {
    const home = join(tmp(), "node");
    const bin = fileURLToPath(new URL("../../bin/tessera.js", import.meta.url));
    const env = { ...process.env, TESSERA_HOME: "", TESSERA_COORDINATOR_URL: "" };
    initNode({ home, env: {} });
    const ok = spawnSync(process.execPath, [bin, "node", "operator-token", "--home", home, "--ttl", "10m", "--json"], { encoding: "utf8", env });
    expect(ok.status).toBe(0);
    const printed = JSON.parse(ok.stdout) as { token: string; node_id: string };
    expect(verifyOperatorToken(printed.token, Math.floor(Date.now() / 1000))).toMatchObject({ ok: true, nodeId: printed.node_id });
    const bad = spawnSync(process.execPath, [bin, "node", "operator-token", "--home", home, "--ttl", "2d"], { encoding: "utf8", env });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/error \[bad_request\]: --ttl must be a duration/);
  });
});
