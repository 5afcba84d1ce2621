/**
 * readLlamaConfig's RoPE scaling, as llama.cpp reads it (llama-model.cpp load_hparams, llama-context.cpp): the scaling
 * type defaults to linear, the factor falls back to the legacy `<arch>.rope.scale_linear` key, and type "none" never
 * scales.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gguf, writeGguf, type GgufValue } from "@tessera/testkit";
import { openGguf } from "./gguf-reader.js";
import { readLlamaConfig, type LlamaConfig } from "./llama-config.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "llama-config-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** The config of a file with a tiny Llama's metadata plus `extra`. */
async function configOf(extra: Record<string, GgufValue>): Promise<LlamaConfig> {
  const path = join(dir, `${files++}.gguf`);
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", gguf.str("llama")],
    ["llama.embedding_length", gguf.u32(64)],
    ["llama.block_count", gguf.u32(2)],
    ["llama.feed_forward_length", gguf.u32(128)],
    ["llama.attention.head_count", gguf.u32(4)],
    ["llama.vocab_size", gguf.u32(260)],
    ...Object.entries(extra),
  ];
  await writeGguf(path, { metadata, tensors: [] });
  const file = openGguf(path);
  try {
    return readLlamaConfig(file);
  } finally {
    file.close();
  }
}

describe("readLlamaConfig, RoPE scaling", () => {
  it.each<[string, Record<string, GgufValue>, number]>([
    ["no scaling keys", {}, 1],
    ["a factor without a type (linear, llama.cpp's default)", { "llama.rope.scaling.factor": gguf.f32(4) }, 0.25],
    ["type linear with a factor", { "llama.rope.scaling.type": gguf.str("linear"), "llama.rope.scaling.factor": gguf.f32(2) }, 0.5],
    ["the legacy rope.scale_linear key", { "llama.rope.scale_linear": gguf.f32(8) }, 0.125],
    ["rope.scaling.factor before the legacy key", { "llama.rope.scaling.factor": gguf.f32(2), "llama.rope.scale_linear": gguf.f32(8) }, 0.5],
    ["a factor of 0", { "llama.rope.scaling.factor": gguf.f32(0) }, 1],
    ["type none with a factor (never scales)", { "llama.rope.scaling.type": gguf.str("none"), "llama.rope.scaling.factor": gguf.f32(4) }, 1],
  ])("%s", async (_what, extra, freqScale) => {
    expect((await configOf(extra)).ropeFreqScale).toBe(freqScale);
  });

  it("refuses a scaling type the runtime does not implement", async () => {
    await expect(configOf({ "llama.rope.scaling.type": gguf.str("yarn"), "llama.rope.scaling.factor": gguf.f32(4) })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/rope scaling yarn is not supported/) });
  });
});
