import { describe, expect, it } from "vitest";
import { resolveModel } from "./resolve-model.js";

const aliases = { "gpt-4o-mini": "llama-3-8b", "gpt-4o": "llama-3-70b", "llama-3-8b": "something-else" };
const known = ["llama-3-8b", "qwen-2.5-7b"];

describe("resolveModel", () => {
  it.each([
    ["exact known name", "qwen-2.5-7b", "qwen-2.5-7b", undefined],
    ["alias to a served model", "gpt-4o-mini", "llama-3-8b", "gpt-4o-mini"],
    ["a served name is never shadowed by an alias", "llama-3-8b", "llama-3-8b", undefined],
  ])("%s", (_name, requested, model, via) => {
    expect(resolveModel(requested, aliases, known)).toEqual(via ? { ok: true, model, via } : { ok: true, model });
  });

  it("unknown name → model_not_found listing the available models", () => {
    const r = resolveModel("mystery", aliases, known);
    expect(r).toEqual({
      ok: false,
      code: "model_not_found",
      message: 'model "mystery" not found; available models: llama-3-8b, qwen-2.5-7b',
    });
  });

  it("alias whose target nobody serves says so", () => {
    const r = resolveModel("gpt-4o", new Map(Object.entries(aliases)), new Set(known));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain('alias of "llama-3-70b", which no node serves');
  });

  it("does not follow inherited properties or alias chains", () => {
    expect(resolveModel("toString", aliases, known).ok).toBe(false);
    expect(resolveModel("chain", { chain: "gpt-4o-mini" }, known).ok).toBe(false);
  });

  it("with nothing served, says so; long lists are cut with a count", () => {
    const none = resolveModel("x", {}, []);
    if (!none.ok) expect(none.message).toContain("no models are available right now");
    const many = Array.from({ length: 60 }, (_, i) => `m${String(i).padStart(2, "0")}`);
    const r = resolveModel("x", {}, many);
    if (!r.ok) expect(r.message).toMatch(/m49 and 10 more$/);
  });
});
