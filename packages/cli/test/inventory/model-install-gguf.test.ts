import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBackendFromConfig, createNodeLogger, initNode, loadNodeConfig, resolveServedModels, type NodeConfig } from "@tessera/node";
import type { Hardware } from "@tessera/protocol";
import { type FakeModelHost, makeTinyModel, startFakeModelHost } from "@tessera/testkit";
import { installModelAction, recommend, type ModelActionDeps } from "../../src/inventory/model-actions.js";
import { ProgressBar } from "../../src/inventory/progress-bar.js";

/**
 * `tessera model install REF` on an embedded-engine node, with every seam injected: a GGUF from a local file host and
 * hub listing lands in the data dir's models folder, becomes node.toml's model_path, and the embedded engine serves it.
 */
const CPU_16GB: Hardware = { cpu_cores: 4, ram_mb: 16384, gpus: [], tier: "cpu" };
let dir: string;
let model: Buffer;
let host: FakeModelHost | undefined;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-install-"));
  model = readFileSync((await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 9, vocab: "bytes" })).path);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await host?.close();
  host = undefined;
});

let homes = 0;
function node(settings: Record<string, unknown> = {}) {
  const home = join(dir, `node-${++homes}`);
  initNode({ home, settings: { backend: "embedded", coordinator_url: "http://127.0.0.1:1", ...settings }, env: {} });
  return { home, config: (): NodeConfig => loadNodeConfig({ home, env: {}, requireConfigFile: true }) };
}

function deps(config: NodeConfig, kind = "embedded", clock = { now: 0 }) {
  const out: string[] = [];
  const err: string[] = [];
  const d: ModelActionDeps = {
    config,
    // A GGUF install never talks to the coordinator: no key is used.
    signer: {} as never,
    fetch: (input, init) => fetch(input, init),
    nowMs: () => (clock.now += 1000),
    sleep: async () => {},
    hardware: async () => CPU_16GB,
    openBackend: () => Promise.reject(new Error("not opened for a GGUF install")),
    backendKind: async () => kind,
    hub: { endpoint: host?.url ?? "http://127.0.0.1:1" },
    out: { write: (s) => void out.push(s), isTTY: false },
    err: { write: (s) => void err.push(s), isTTY: false },
  };
  return { d, out: () => out.join(""), err: () => err.join("") };
}

describe("tessera model install for the embedded engine", () => {
  it("hf:owner/repo:QUANT: progress lines with speed, stored under the data dir, node.toml's model_path, and the embedded engine serves it", async () => {
    host = await startFakeModelHost({ repos: { "tessera/tiny-GGUF": [{ path: "tiny-Q4_K_M.gguf", bytes: model }] }, bytesPerTick: 16_384, tickMs: 5 });
    const n = node({ served_models: ["old-demo"], model_path: join(dir, "old-demo.gguf") });
    const run = deps(n.config());
    expect(await installModelAction(run.d, "hf:tessera/tiny-GGUF:Q4_K_M")).toEqual({ model: "tiny-Q4_K_M", via: "download" });
    const path = join(n.config().paths.dataDir, "models", "tiny-Q4_K_M.gguf");
    // A pipe gets whole lines: the first, one every 5 s of (fake) clock, the last at 100% with the speed.
    const lines = run.out().split("\n");
    expect(lines.filter((l) => l.startsWith("downloading tiny-Q4_K_M.gguf")).length).toBeGreaterThanOrEqual(2);
    expect(run.out()).toMatch(/downloading tiny-Q4_K_M\.gguf  \[#{20}\]  100%  \d+\.\d kB \/ \d+\.\d kB  \d+(\.\d)? [kM]?B\/s\n/);
    expect(run.out()).toMatch(new RegExp(`installed ${path} \\(.*sha256 [0-9a-f]{64}, checked against the published sha256\\)`));
    expect(run.out()).toMatch(/node\.toml: model_path is now this file; the node advertises "tiny-Q4_K_M" from its next start \(`tessera start --home .*`\)/);
    const config = n.config();
    expect(config.model_path).toBe(path);
    expect(config.served_models).toEqual(["tiny-Q4_K_M"]);
    expect(readFileSync(config.paths.configFile, "utf8")).toMatch(/# Models this node advertises/);
    // What the daemon does at start: the embedded backend on model_path, its models ∩ served_models.
    const { logger } = createNodeLogger({ level: "silent", stdout: false });
    const backend = await createBackendFromConfig(config, { fetch: (i, o) => fetch(i, o), logger });
    try {
      const served = resolveServedModels(config.served_models, await backend.listModels(), backend.kind);
      expect(served.served.map((m) => m.id)).toEqual(["tiny-Q4_K_M"]);
    } finally {
      await backend.close?.();
    }
  });

  it("an empty served_models stays empty (everything the backend has); a second install of the same file downloads nothing", async () => {
    host = await startFakeModelHost({ files: [{ path: "tiny.gguf", bytes: model }] });
    const n = node();
    await installModelAction(deps(n.config()).d, `${host.url}/files/tiny.gguf`);
    expect(n.config().served_models).toEqual([]);
    const again = deps(n.config());
    await installModelAction(again.d, `${host.url}/files/tiny.gguf`);
    expect(again.out()).toMatch(/^already installed: .*tiny\.gguf .*no sha256 published: computed\)/);
    expect(host.requests).toHaveLength(1);
  });

  it("too large for this node: refused before a byte is downloaded; --force downloads it but leaves node.toml alone", async () => {
    // The fit reads the size from the name (70B at Q4_K_M ≈ 40 GiB), as for Ollama names; the bytes are the tiny model.
    host = await startFakeModelHost({ repos: { "tessera/Huge-70B-GGUF": [{ path: "huge-70B-Q4_K_M.gguf", bytes: model }] } });
    const n = node();
    const before = readFileSync(n.config().paths.configFile, "utf8");
    const run = deps(n.config());
    await expect(installModelAction(run.d, "hf:tessera/Huge-70B-GGUF:Q4_K_M")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/needs about .* GiB but this node has 16\.0 GiB; not installed/) });
    expect(host.requests.map((r) => r.url)).toEqual(["/api/models/tessera/Huge-70B-GGUF/tree/main?recursive=true"]);
    expect(existsSync(join(n.config().paths.dataDir, "models", "huge-70B-Q4_K_M.gguf"))).toBe(false);
    const forced = deps(n.config());
    await installModelAction(forced.d, "hf:tessera/Huge-70B-GGUF:Q4_K_M", { force: true });
    expect(forced.err()).toMatch(/it does not fit this node: node\.toml is unchanged and it is never advertised/);
    expect(readFileSync(n.config().paths.configFile, "utf8")).toBe(before);
  });

  it("bad input changes nothing: a name for the embedded engine, --sha256 that is not hex or given with a name, a malformed reference", async () => {
    host = await startFakeModelHost({ files: [{ path: "tiny.gguf", bytes: model }] });
    const n = node();
    const before = readFileSync(n.config().paths.configFile, "utf8");
    const run = deps(n.config());
    await expect(installModelAction(run.d, "qwen2.5:7b")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/the embedded engine installs GGUF files, not "qwen2\.5:7b": give a URL or a Hugging Face reference/) });
    await expect(installModelAction(run.d, `${host.url}/files/tiny.gguf`, { sha256: "xyz" })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/--sha256 must be 64 hex digits/) });
    await expect(installModelAction(run.d, "qwen2.5:7b", { sha256: "a".repeat(64) })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/--sha256 checks a GGUF given by URL/) });
    for (const ref of ["hf:owner", "hf:o/r", "hf:o/r:", "https://", "hf:o/r/readme.md"]) {
      await expect(installModelAction(run.d, ref), ref).rejects.toMatchObject({ code: "bad_request" });
    }
    expect(host.requests).toEqual([]);
    expect(existsSync(join(n.config().paths.dataDir, "models"))).toBe(false);
    expect(readFileSync(n.config().paths.configFile, "utf8")).toBe(before);
  });

  it("vLLM, SGLang, llama-server, llama-swap: a clear message how to add a model to that server; Ollama takes hf:…:QUANT as hf.co/…", async () => {
    const n = node();
    const cases: Array<[string, RegExp]> = [
      ["vllm", /backend vllm cannot install hf:o\/r:Q4_K_M: vLLM loads its model when the server starts .* `vllm serve hf:o\/r:Q4_K_M`/],
      ["sglang", /SGLang loads its model when the server starts .*sglang\.launch_server --model-path/],
      ["llama-server", /llama-server loads one GGUF when it starts .*`llama-server -m FILE\.gguf` \(or `llama-server -hf owner\/repo:Q4_K_M`\)/],
      ["llama-swap", /llama-swap reads its models from its config file/],
    ];
    for (const [kind, message] of cases) {
      await expect(installModelAction(deps(n.config(), kind).d, "hf:o/r:Q4_K_M")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(message) });
    }
    await expect(installModelAction(deps(n.config(), "ollama").d, "https://example.com/x.gguf")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/ollama create NAME -f Modelfile/) });
    // Ollama with hf:…:QUANT goes the Ollama path as hf.co/o/r:Q4_K_M (here: the fake backend answers it has no such model).
    const asked: string[] = [];
    const ollama = deps(n.config(), "ollama").d;
    ollama.fetch = async () => {
      throw new Error("offline");
    };
    ollama.openBackend = async () => ({ kind: "ollama", pull: async (name: string) => void asked.push(name), listModels: async () => [{ id: asked[0]!, sizeBytes: 1000 }] }) as never;
    expect(await installModelAction(ollama, "hf:o/r-1.5B-GGUF:Q4_K_M")).toEqual({ model: "hf.co/o/r-1.5B-GGUF:Q4_K_M", via: "backend" });
    expect(asked).toEqual(["hf.co/o/r-1.5B-GGUF:Q4_K_M"]);
  });
});

describe("tessera model recommend by backend", () => {
  it("embedded: GGUF references; Ollama: Ollama names; a backend that loads models itself: nothing to install, and how to add one", () => {
    const embedded = recommend(CPU_16GB, "embedded");
    expect(embedded.tiers.find((t) => t.thisNode)).toMatchObject({ model: "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M", fits: true });
    expect(embedded.tiers.every((t) => t.model.startsWith("hf:"))).toBe(true);
    expect(recommend(CPU_16GB, "ollama").tiers.find((t) => t.thisNode)?.model).toBe("qwen2.5:1.5b");
    const vllm = recommend(CPU_16GB, "vllm");
    expect(vllm).toMatchObject({ installs: false, tiers: [], howTo: expect.stringMatching(/vLLM loads its model when the server starts/) });
  });
});

describe("download progress on a terminal and in a pipe", () => {
  const step = (bar: ProgressBar, clock: { now: number }, at: number, bytes: number) => {
    clock.now = at;
    bar.update({ status: "downloading m.gguf", completedBytes: bytes, totalBytes: 10_000_000 });
  };

  it("a terminal gets one line redrawn in place (at most every 100 ms) with the speed, and a newline at the end", () => {
    const out: string[] = [];
    const clock = { now: 0 };
    const bar = new ProgressBar({ write: (s) => void out.push(s), isTTY: true }, () => clock.now, { pipeEveryMs: 5000 });
    step(bar, clock, 0, 0);
    step(bar, clock, 50, 500_000); // within 100 ms: not redrawn
    step(bar, clock, 1000, 5_000_000);
    step(bar, clock, 2000, 10_000_000);
    bar.done();
    expect(out).toEqual([
      "\r\x1b[Kdownloading m.gguf  [--------------------]    0%  0 B / 10.0 MB",
      "\r\x1b[Kdownloading m.gguf  [##########----------]   50%  5.0 MB / 10.0 MB  5.0 MB/s",
      "\r\x1b[Kdownloading m.gguf  [####################]  100%  10.0 MB / 10.0 MB  5.0 MB/s",
      "\n",
    ]);
  });

  it("a pipe gets whole lines: the first, one every pipeEveryMs, and the last", () => {
    const out: string[] = [];
    const clock = { now: 0 };
    const bar = new ProgressBar({ write: (s) => void out.push(s), isTTY: false }, () => clock.now, { pipeEveryMs: 5000 });
    for (let t = 0; t <= 10_000; t += 1000) step(bar, clock, t, t * 1000);
    bar.done();
    expect(out.map((l) => /(\d+)%/.exec(l)?.[1])).toEqual(["0", "50", "100"]);
    expect(out.every((l) => l.startsWith("downloading m.gguf  [") && l.endsWith("\n"))).toBe(true);
  });
});
