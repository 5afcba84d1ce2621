import { describe, expect, it } from "vitest";
import type { BackendAdapter } from "../backends/adapter.js";
import { releaseModelMemory, reloadModel } from "./release-memory.js";

/** A backend of `kind` that records unload/load calls (only the fields release-memory.ts reads matter). */
function backend(kind: string, withUnload = true) {
  const calls: string[] = [];
  const b = {
    kind,
    ...(withUnload
      ? { unload: async (model?: string) => void calls.push(`unload ${model ?? "*"}`), load: async (model?: string) => void calls.push(`load ${model ?? "*"}`) }
      : {}),
  } as unknown as BackendAdapter;
  return { b, calls };
}

describe("freeing the model's memory when the owner is back", () => {
  it("embedded: disposes its model and context once, and loads it again on enlist", async () => {
    const { b, calls } = backend("embedded");
    expect(await releaseModelMemory(b, ["tiny"])).toBe("model and context released");
    await reloadModel(b);
    expect(calls).toEqual(["unload *", "load *"]);
  });

  it("Ollama: unloads every served model (keep_alive 0) and leaves loading to the next request", async () => {
    const { b, calls } = backend("ollama");
    expect(await releaseModelMemory(b, ["qwen2.5:7b", "llama3.2:3b"])).toBe("unloaded 2 model(s) from Ollama (keep_alive 0)");
    await reloadModel(b);
    expect(calls).toEqual(["unload qwen2.5:7b", "unload llama3.2:3b"]);
  });

  it("a server the operator runs (vLLM, SGLang, llama-server): nothing is done, and the summary says so", async () => {
    const { b, calls } = backend("vllm", false);
    expect(await releaseModelMemory(b, ["m"])).toBe("backend vllm keeps its own memory");
    await reloadModel(b);
    expect(calls).toEqual([]);
  });
});
