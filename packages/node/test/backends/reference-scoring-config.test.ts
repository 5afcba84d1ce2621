import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type FakeOpenAICompatible, startFakeOpenAICompatible } from "@tessera/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBackendFromConfig } from "../../src/backend-from-config.js";
import { NODE_SETTINGS, loadNodeConfig } from "../../src/config.js";
import { createNodeLogger } from "../../src/logger.js";

/**
 * The operator's switch for vLLM and SGLang references (`reference_scoring`, `score_eos_token_ids`): read from flag,
 * env or node.toml like every setting, refused by name when malformed, and reaching the adapter, whose models then
 * announce `scoring: true`, and only then.
 */
const dirs: string[] = [];
let vllm: FakeOpenAICompatible;
let sglang: FakeOpenAICompatible;

beforeAll(async () => {
  vllm = await startFakeOpenAICompatible({ flavour: "vllm", models: ["m"] });
  sglang = await startFakeOpenAICompatible({ flavour: "sglang", models: ["m"] });
});
afterAll(async () => {
  await vllm?.http.close();
  await sglang?.http.close();
});
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function home(toml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-ref-scoring-"));
  dirs.push(dir);
  if (toml !== undefined) writeFileSync(join(dir, "node.toml"), toml);
  return dir;
}
const context = () => ({ fetch: globalThis.fetch, logger: createNodeLogger({ level: "silent", stdout: false }).logger });

describe("reference_scoring and score_eos_token_ids", () => {
  it("are off and empty by default, and --help lists them with their env vars", () => {
    const config = loadNodeConfig({ home: home(), env: {} });
    expect(config.reference_scoring).toBe(false);
    expect(config.score_eos_token_ids).toEqual([]);
    const flags = NODE_SETTINGS.map((s) => `${s.flag} ${s.arg} ${s.env}`);
    expect(flags).toContain("--reference-scoring <on|off> TESSERA_REFERENCE_SCORING");
    expect(flags).toContain("--score-eos-token-ids <ids> TESSERA_SCORE_EOS_TOKEN_IDS");
  });

  it("read on/off and comma-separated ids from flags and env, and TOML's own types from node.toml", () => {
    const fromFlags = loadNodeConfig({ home: home(), env: {}, flags: { reference_scoring: "on", score_eos_token_ids: "2, 128009" } });
    expect(fromFlags).toMatchObject({ reference_scoring: true, score_eos_token_ids: [2, 128009] });
    const fromEnv = loadNodeConfig({ home: home(), env: { TESSERA_REFERENCE_SCORING: "true", TESSERA_SCORE_EOS_TOKEN_IDS: "7" } });
    expect(fromEnv).toMatchObject({ reference_scoring: true, score_eos_token_ids: [7] });
    const fromFile = loadNodeConfig({ home: home("reference_scoring = true\nscore_eos_token_ids = [2, 3]\n"), env: {} });
    expect(fromFile).toMatchObject({ reference_scoring: true, score_eos_token_ids: [2, 3] });
  });

  it("refuse malformed values naming the flag and the env var", () => {
    expect(() => loadNodeConfig({ home: home(), env: {}, flags: { reference_scoring: "maybe" } })).toThrow(/--reference-scoring, TESSERA_REFERENCE_SCORING/);
    expect(() => loadNodeConfig({ home: home(), env: { TESSERA_SCORE_EOS_TOKEN_IDS: "2,eos" } })).toThrow(/invalid score_eos_token_ids .*--score-eos-token-ids, TESSERA_SCORE_EOS_TOKEN_IDS/);
    expect(() => loadNodeConfig({ home: home(), env: {}, flags: { score_eos_token_ids: "-1" } })).toThrow(/token ids/);
  });

  it("make a vLLM node's models announce scoring, and only when on", async () => {
    const on = await createBackendFromConfig(loadNodeConfig({ home: home(), env: {}, flags: { backend: "vllm", vllm_host: vllm.url, reference_scoring: "on" } }), context());
    expect(on.score).toBeDefined();
    await expect(on.listModels()).resolves.toEqual([expect.objectContaining({ id: "m", scoring: true })]);
    const off = await createBackendFromConfig(loadNodeConfig({ home: home(), env: {}, flags: { backend: "vllm", vllm_host: vllm.url } }), context());
    expect(off.score).toBeUndefined();
    expect((await off.listModels())[0]).not.toHaveProperty("scoring");
  });

  it("an SGLang reference without EOS ids stops the daemon at start, naming the setting", async () => {
    const config = loadNodeConfig({ home: home(), env: {}, flags: { backend: "sglang", sglang_host: sglang.url, reference_scoring: "on" } });
    await expect(createBackendFromConfig(config, context())).rejects.toMatchObject({ code: "bad_request", message: expect.stringContaining("--score-eos-token-ids") });
    const withIds = loadNodeConfig({ home: home(), env: {}, flags: { backend: "sglang", sglang_host: sglang.url, reference_scoring: "on", score_eos_token_ids: "2" } });
    const backend = await createBackendFromConfig(withIds, context());
    await expect(backend.listModels()).resolves.toEqual([expect.objectContaining({ id: "m", scoring: true })]);
  });
});
