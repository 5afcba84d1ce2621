import { describe, expect, it } from "vitest";
import { NodeRegister } from "@tessera/protocol";
import { refreshModelFiles, resolveServedModels } from "./register-node.js";

const A = "a1".repeat(32);
const B = "b2".repeat(32);

describe("the served models' file identity (sha256)", () => {
  it("an Ollama model's sha256 is registered as the embedded engine's is", () => {
    const { served } = resolveServedModels([], [{ id: "canon:tiny", loaded: false, sizeBytes: 10, sha256: A }], "ollama");
    expect(served).toEqual([expect.objectContaining({ id: "canon:tiny", backend: "ollama", sha256: A })]);
    const registration = { type: "register", public_key: "c".repeat(64), version: "0.1.0", hardware: { cpu_cores: 2, ram_mb: 1024, gpus: [] }, models: served, max_concurrency: 1 };
    expect(NodeRegister.parse(registration).models[0]?.sha256).toBe(A);
  });

  it("follows the backend: gained, replaced, lost; a model the backend no longer lists keeps its own", () => {
    const { served } = resolveServedModels([], [{ id: "m", loaded: false }, { id: "n", loaded: false, sha256: A }, { id: "gone", loaded: false, sha256: B }], "ollama");
    expect(refreshModelFiles(served, [{ id: "m", loaded: false }, { id: "n", loaded: false, sha256: A }])).toEqual([]);
    expect(refreshModelFiles(served, [{ id: "m", loaded: false, sha256: A }, { id: "n", loaded: false, sha256: B }])).toEqual(["m", "n"]);
    expect(served.map((m) => [m.id, m.sha256])).toEqual([["m", A], ["n", B], ["gone", B]]);
    expect(refreshModelFiles(served, [{ id: "m", loaded: false }, { id: "n", loaded: false, sha256: B }])).toEqual(["m"]);
    expect("sha256" in served[0]!).toBe(false);
  });
});
