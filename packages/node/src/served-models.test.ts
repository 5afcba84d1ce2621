import { describe, expect, it } from "vitest";
import { MAX_MODELS_PER_NODE, NodeRegister } from "@tessera/protocol";
import { resolveServedModels } from "./register-node.js";

describe("resolveServedModels", () => {
  it("leaves out, with a reason, a backend model whose name no coordinator accepts; the rest still register", () => {
    const backend = [{ id: "qwen2.5:7b-instruct-q4_K_M", loaded: false }, { id: "<img src=x onerror=alert(1)>", loaded: false }, { id: "has space", loaded: false }];
    const { served, refused } = resolveServedModels([], backend, "ollama");
    expect(served.map((m) => m.id)).toEqual(["qwen2.5:7b-instruct-q4_K_M"]);
    expect(refused).toHaveLength(2);
    expect(refused[0]).toMatch(/is not a model id coordinators accept/);
    const registration = { type: "register", public_key: "a".repeat(64), version: "0.1.0", hardware: { cpu_cores: 2, ram_mb: 1024, gpus: [] }, models: served, max_concurrency: 1 };
    expect(NodeRegister.safeParse(registration).success).toBe(true);
  });

  it("announces at most the per-node cap and says which were left out", () => {
    const backend = Array.from({ length: MAX_MODELS_PER_NODE + 3 }, (_, i) => ({ id: `model-${i}`, loaded: false }));
    const { served, refused } = resolveServedModels([], backend, "ollama");
    expect(served).toHaveLength(MAX_MODELS_PER_NODE);
    expect(refused).toHaveLength(3);
    expect(refused[0]).toMatch(new RegExp(`^model-${MAX_MODELS_PER_NODE}: a node may announce at most ${MAX_MODELS_PER_NODE} models`));
  });

  it("announces scoring, and constrained scoring only with it: a reference says whether it can rank under a grammar", () => {
    const backend = [
      { id: "a", loaded: true, scoring: true, constrainedScoring: true },
      { id: "b", loaded: true, scoring: true },
      { id: "c", loaded: true, constrainedScoring: true },
    ];
    const { served } = resolveServedModels([], backend, "embedded");
    expect(served.map((m) => [m.id, m.scoring, m.constrained_scoring])).toEqual([["a", true, true], ["b", true, undefined], ["c", undefined, undefined]]);
  });
});
