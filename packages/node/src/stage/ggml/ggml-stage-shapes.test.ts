/**
 * A GGUF file whose tensors or hyper-parameters do not fit together is refused with bad_request when the ggml span
 * loads, naming the tensor or key, instead of reaching a GGML_ASSERT in ggml, which aborts the process.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gguf, writeGguf, type GgufTensorSource, type GgufValue } from "@tessera/testkit";
import { loadGgmlStage } from "./ggml-stage.js";

const EMBD = 64;
const FF = 128;
const VOCAB = 260;
const HEADS = 4;
const KV_HEADS = 2;
const LAYERS = 2;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ggml-stage-shapes-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A two-layer Llama file with small F32 weights, the tensor dims `dims` names replaced, the metadata `meta` names added. */
async function writeModel(name: string, dims: Record<string, number[]> = {}, meta: Record<string, GgufValue> = {}): Promise<string> {
  const kvDim = (EMBD / HEADS) * KV_HEADS;
  const shapes: Record<string, number[]> = { "token_embd.weight": [EMBD, VOCAB], "output_norm.weight": [EMBD], "output.weight": [EMBD, VOCAB] };
  for (let l = 0; l < LAYERS; l++) {
    Object.assign(shapes, {
      [`blk.${l}.attn_norm.weight`]: [EMBD], [`blk.${l}.attn_q.weight`]: [EMBD, EMBD], [`blk.${l}.attn_k.weight`]: [EMBD, kvDim],
      [`blk.${l}.attn_v.weight`]: [EMBD, kvDim], [`blk.${l}.attn_output.weight`]: [EMBD, EMBD], [`blk.${l}.ffn_norm.weight`]: [EMBD],
      [`blk.${l}.ffn_gate.weight`]: [EMBD, FF], [`blk.${l}.ffn_up.weight`]: [EMBD, FF], [`blk.${l}.ffn_down.weight`]: [FF, EMBD],
    });
  }
  Object.assign(shapes, dims);
  const tensors: GgufTensorSource[] = Object.entries(shapes).map(([tensor, d]) => ({
    name: tensor, dims: d, type: "F32", data: () => new Float32Array(d.reduce((a, b) => a * b, 1)).fill(0.01),
  }));
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", gguf.str("llama")],
    ["llama.context_length", gguf.u32(256)],
    ["llama.embedding_length", gguf.u32(EMBD)],
    ["llama.block_count", gguf.u32(LAYERS)],
    ["llama.feed_forward_length", gguf.u32(FF)],
    ["llama.attention.head_count", gguf.u32(HEADS)],
    ["llama.attention.head_count_kv", gguf.u32(KV_HEADS)],
    ["llama.vocab_size", gguf.u32(VOCAB)],
    ...Object.entries(meta),
  ]);
  const path = join(dir, `${name}.gguf`);
  await writeGguf(path, { metadata: [...metadata], tensors });
  return path;
}

describe("ggml span of a malformed file", () => {
  it("loads and computes the well-formed file (the other cases differ from it in one thing)", async () => {
    const s = loadGgmlStage({ path: await writeModel("good"), start: 0, end: LAYERS });
    expect(s.forward("r", [1, 2, 3], [0, 1, 2]).length).toBe(VOCAB);
    s.close();
  });

  it.each([
    ["attn_k with too few rows", "blk.1.attn_k.weight", [EMBD, 24], /blk\.1\.attn_k\.weight is \[64, 24\], the model's hyper-parameters need \[64, 32\]/],
    ["ffn_down transposed", "blk.0.ffn_down.weight", [EMBD, FF], /blk\.0\.ffn_down\.weight is \[64, 128\].*need \[128, 64\]/],
    ["a norm of the wrong length", "blk.1.attn_norm.weight", [32], /blk\.1\.attn_norm\.weight is \[32\].*need \[64\]/],
    ["a 2-D norm", "output_norm.weight", [EMBD, 1], /output_norm\.weight is \[64, 1\].*need \[64\]/],
    ["token_embd with fewer rows than the vocabulary", "token_embd.weight", [EMBD, 100], /token_embd\.weight is \[64, 100\].*need \[64, 260 or more rows\]/],
    ["an output head narrower than the vocabulary", "output.weight", [EMBD, 100], /output\.weight is \[64, 100\].*need \[64, 260\]/],
  ])("refuses %s with bad_request", async (_what, tensor, dims, message) => {
    const path = await writeModel(tensor.replaceAll(".", "-"), { [tensor]: dims });
    expect(() => loadGgmlStage({ path, start: 0, end: LAYERS })).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringMatching(message) }));
  });

  it("checks only the tensors a span loads: a span without the bad layer loads", async () => {
    const path = await writeModel("bad-layer-1", { "blk.1.attn_q.weight": [EMBD, 48] });
    const first = loadGgmlStage({ path, start: 0, end: 1 });
    expect(first.forward("r", [1], [0]).length).toBe(EMBD);
    first.close();
    expect(() => loadGgmlStage({ path, start: 1, end: LAYERS })).toThrow(/blk\.1\.attn_q\.weight is \[64, 48\]/);
  });

  it.each([
    ["a head size that is not an integer", { "llama.attention.head_count": gguf.u32(3), "llama.attention.head_count_kv": gguf.u32(3) }, /head size 21\.3+\d* .* is not a positive integer/],
    ["more rotated dimensions than the head size", { "llama.rope.dimension_count": gguf.u32(32) }, /rope\.dimension_count 32 is not within the head size 16/],
  ])("refuses %s with bad_request", async (what, meta, message) => {
    const path = await writeModel(what.replaceAll(" ", "-"), {}, meta);
    expect(() => loadGgmlStage({ path, start: 0, end: LAYERS })).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringMatching(message) }));
  });
});
