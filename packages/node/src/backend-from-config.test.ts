import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createBackendFromConfig } from "./backend-from-config.js";
import { loadNodeConfig } from "./config.js";
import { createNodeLogger } from "./logger.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function config(flags: Record<string, string>) {
  const home = mkdtempSync(join(tmpdir(), "tessera-backend-"));
  dirs.push(home);
  return loadNodeConfig({ home, env: {}, flags: { backend: "embedded", ...flags } });
}
const context = () => ({ fetch: () => Promise.reject(new Error("no network in this test")), logger: createNodeLogger({ level: "silent", stdout: false }).logger });

describe("the backend a node's config asks for", () => {
  it("a node with only --stage-model serves layer spans and no whole model, instead of failing to start", async () => {
    const backend = await createBackendFromConfig(config({ stage_model: "/models/big.gguf" }), context());
    expect(backend.kind).toBe("stage-only");
    expect(await backend.health()).toEqual({ ok: true });
    expect(await backend.listModels()).toEqual([]);
    const parts = [];
    for await (const p of backend.doStream({ model: "big", messages: [{ role: "user", content: "hi" }], sampling: { max_tokens: 4, temperature: 0, top_p: 1 } })) parts.push(p);
    expect(parts).toEqual([
      { type: "error", code: "model_not_found", message: expect.stringMatching(/offers layer spans only/) },
      { type: "finish", reason: "error" },
    ]);
  });

  it("an embedded node with neither a model nor a stage model is told what to set", async () => {
    await expect(createBackendFromConfig(config({}), context())).rejects.toThrow(/the embedded backend needs a GGUF model: set --model/);
  });
});
