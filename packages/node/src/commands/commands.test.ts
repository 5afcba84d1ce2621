import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { BackendAdapter } from "../backends/adapter.js";
import { renderNodeToml } from "../config-file.js";
import { createNodeLogger } from "../logger.js";
import { NodeCommandExecutor } from "./command-executor.js";
import { inventoryRows, reconcileInventory } from "./inventory.js";
import { checkModelFit, memoryBudgetMb, withVramCap } from "./model-fit.js";
import { stageMemoryOffer } from "../stage-host/memory-offer.js";
import { nextServedModels, writeServedModels } from "./served-models-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-toml-"));
  dirs.push(dir);
  const path = join(dir, "node.toml");
  writeFileSync(path, text);
  return path;
}

describe("writeServedModels keeps the operator's file and changes only served_models", () => {
  it("replaces the commented default that `tessera init` writes", () => {
    const path = file(renderNodeToml({ coordinator_url: "http://c:7337" }, "/tmp/node.log"));
    writeServedModels(path, ["qwen2.5:7b"]);
    const text = readFileSync(path, "utf8");
    expect(text).toMatch(/^served_models = \["qwen2\.5:7b"\]$/m);
    expect(text).toMatch(/^coordinator_url = "http:\/\/c:7337"$/m);
    expect(text).toMatch(/# Models this node advertises/);
  });

  it("replaces a live list written over several lines, keeping comments around it", () => {
    const path = file('# mine\nbackend = "ollama"\nserved_models = [\n  "a:1b",\n  "b:2b",\n] # trailing\n# end\n');
    writeServedModels(path, ["a:1b"]);
    expect(readFileSync(path, "utf8")).toBe('# mine\nbackend = "ollama"\nserved_models = ["a:1b"]\n# end\n');
  });

  it("appends the key to a file without it", () => {
    const path = file('backend = "ollama"');
    writeServedModels(path, ["x:1b"]);
    expect(readFileSync(path, "utf8")).toBe('backend = "ollama"\nserved_models = ["x:1b"]\n');
  });

  it("an empty list means everything, so installs and removals leave it alone; the last removal too", () => {
    expect(nextServedModels([], { add: "a" })).toBeUndefined();
    expect(nextServedModels(["a"], { add: "b" })).toEqual(["a", "b"]);
    expect(nextServedModels(["a", "b"], { add: "b" })).toEqual(["a", "b"]);
    expect(nextServedModels(["a", "b"], { remove: "a" })).toEqual(["b"]);
    expect(nextServedModels(["a"], { remove: "a" })).toBeUndefined();
  });
});

describe("fit check", () => {
  const gpu8 = { ram_mb: 65536, gpus: [{ vendor: "nvidia" as const, name: "x", vram_mb: 8188 }] };
  const cpu16 = { ram_mb: 16384, gpus: [] };

  it("counts GPU memory on a GPU node and RAM on a CPU node", () => {
    expect(memoryBudgetMb(gpu8)).toBe(8188);
    expect(memoryBudgetMb({ ram_mb: 1, gpus: [gpu8.gpus[0]!, gpu8.gpus[0]!] })).toBe(16376);
    expect(memoryBudgetMb(cpu16)).toBe(16384);
  });

  it("max_vram_fraction: the fit check sees only the share of each GPU the node may use, and refuses a bad share", () => {
    expect(memoryBudgetMb(withVramCap(gpu8, 0.5))).toBe(4094);
    expect(withVramCap(gpu8, 0.5).ram_mb).toBe(65536);
    // An 8B model at Q4 fits 8 GiB but not the half of it a contributor offers.
    expect(checkModelFit("llama3.1:8b", { hardware: gpu8 }).fits).toBe(true);
    expect(checkModelFit("llama3.1:8b", { hardware: withVramCap(gpu8, 0.5) }).fits).toBe(false);
    for (const bad of [0, -0.1, 1.5, Number.NaN]) expect(() => withVramCap(gpu8, bad)).toThrow(RangeError);
  });

  it("max_vram_fraction bounds the memory offered for layer spans", () => {
    const GiB = 1024 ** 3;
    expect(stageMemoryOffer(0.5, 10 * GiB, 16 * GiB)).toBe(8 * GiB);
    expect(stageMemoryOffer(0.8, 2 * GiB, 16 * GiB)).toBe(2 * GiB);
    expect(() => stageMemoryOffer(0, GiB, GiB)).toThrow(RangeError);
  });

  it.each([
    ["llama3.1:8b", gpu8, true, true],
    ["qwen2.5:32b", gpu8, false, true],
    ["llama3.3:70b", cpu16, false, true],
    ["mystery", gpu8, true, false],
  ] as const)("%s fits %s: %s (known %s)", (model, hw, fits, known) => {
    expect(checkModelFit(model, { hardware: hw })).toMatchObject({ fits, known });
  });

  it("a name without a size is judged by its size on disk", () => {
    expect(checkModelFit("mystery", { hardware: gpu8, sizeBytes: 20e9 })).toMatchObject({ fits: false, known: true });
    expect(checkModelFit("mystery", { hardware: gpu8, sizeBytes: 2e9 })).toMatchObject({ fits: true, known: true });
  });
});

describe("inventory", () => {
  const hw = { ram_mb: 65536, gpus: [{ vendor: "nvidia" as const, name: "x", vram_mb: 8188 }] };
  const backend = [
    { id: "a:1b", loaded: true, sizeBytes: 1e9 },
    { id: "b:2b", loaded: false },
    { id: "huge:70b", loaded: false },
  ];

  it("serves only what the backend has and what fits; says what is missing, too large or unlisted", () => {
    const inv = reconcileInventory(["a:1b", "huge:70b", "gone:1b"], backend, "ollama", hw);
    expect(inv.served.map((m) => m.id)).toEqual(["a:1b"]);
    expect(inv.missing).toEqual(["gone:1b"]);
    expect(inv.tooLarge.map((f) => f.model)).toEqual(["huge:70b"]);
    expect(inv.unlisted).toEqual(["b:2b"]);
  });

  it("rows carry status loaded / installed / missing, served ones first", () => {
    const rows = inventoryRows(["a:1b", "gone:1b"], backend, "ollama", hw);
    expect(rows.map((r) => [r.name, r.status, r.served])).toEqual([
      ["a:1b", "loaded", true],
      ["b:2b", "installed", false],
      ["gone:1b", "missing", false],
      ["huge:70b", "installed", false],
    ]);
  });
});

describe("NodeCommandExecutor.inProgress (sent with a registration)", () => {
  it("lists a command from the moment it is taken until it has finished", async () => {
    let releasePull!: () => void;
    const pulled = new Promise<void>((r) => (releasePull = r));
    let pulling!: () => void;
    const started = new Promise<void>((r) => (pulling = r));
    const backend = {
      kind: "fake",
      pull: async () => {
        pulling();
        await pulled;
      },
      listModels: async () => [{ id: "tiny:1b", sizeBytes: 1_000_000 }],
    } as unknown as BackendAdapter;
    const reports: string[] = [];
    const executor = new NodeCommandExecutor({
      backend,
      hardware: { gpus: [], ram_mb: 16384 },
      configured: [],
      configuredSource: "default",
      configFile: file(renderNodeToml({}, "/tmp/node.log")),
      served: { list: [], ids: new Set() },
      report: async (_id, r) => void reports.push(r.status),
      sync: async () => {},
      logger: createNodeLogger({ level: "silent" }).logger,
      now: () => 0,
    });
    expect(executor.inProgress()).toEqual([]);
    executor.accept({ id: "c1", type: "model_install", model: "tiny:1b", issued_at: new Date(0).toISOString() });
    executor.accept({ id: "c2", type: "model_remove", model: "gone:1b", issued_at: new Date(0).toISOString() });
    expect(executor.inProgress()).toEqual(["c1", "c2"]);
    await started;
    expect(executor.inProgress()).toEqual(["c1", "c2"]);
    releasePull();
    await executor.idle();
    await new Promise((r) => setImmediate(r));
    expect(executor.inProgress()).toEqual([]);
    expect(reports).toContain("succeeded");
  });
});
