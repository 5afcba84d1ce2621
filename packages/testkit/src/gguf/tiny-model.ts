import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { dirname, join } from "node:path";
import { TokenType, type GgmlTypeName } from "./gguf-format.js";
import { gguf, type GgufTensorSource, type GgufValue, writeGguf } from "./gguf-writer.js";
import { SeededRandom } from "./seeded-random.js";
import { loadSpmVocab, type SpmVocab } from "./spm-vocab.js";

/**
 * `makeTinyModel()`: a seeded, deterministic random-weight Llama model in GGUF v3 that llama.cpp loads and runs.
 * Same options → byte-identical file. See design.md for why the output head is scaled.
 */
export type TinyWeightType = "f32" | "f16" | "bf16" | "q8_0" | "q4_k_m";
export type TinyVocab = "bytes" | "spm";
export type TinyPreset = "tiny" | "50m";
export type TinyPooling = "mean" | "cls" | "last";
/** GGUF `<arch>.pooling_type` values (llama.cpp's enum llama_pooling_type). */
export const POOLING_TYPE_IDS: Record<TinyPooling, number> = { mean: 1, cls: 2, last: 3 };

export interface TinyModelDims {
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  feedForwardLength: number;
  contextLength: number;
}

export interface TinyModelOptions extends Partial<TinyModelDims> {
  /** Where to write the .gguf file (its directory must exist). */
  path: string;
  seed?: number;
  /**
   * Type of the 2-D weight matrices; norm weights are always F32. Default "f16". "bf16" writes BF16 (GGML type 30,
   * the f32's top 16 bits rounded to nearest even, as ggml converts). "q4_k_m" mixes types as llama.cpp's
   * Q4_K_M does: Q6_K for the output head and for attn_v/ffn_down of some layers, Q4_K for the rest.
   */
  weightType?: TinyWeightType;
  /** "tiny" (default): 64 wide, 2 layers, 4 heads, 2 KV heads, FF 128, context 512. "50m": ~56 M parameters. */
  preset?: TinyPreset;
  /**
   * "spm" (default): Llama's real 32 000-token SentencePiece vocabulary, so output looks word-like.
   * "bytes": 260 tokens (unk, bos, eos, the 256 byte tokens, "▁"); smallest possible file, output mostly not UTF-8.
   */
  vocab?: TinyVocab;
  /** Standard deviation of the logits; larger = more peaked next-token distribution. Default 16. */
  outputScale?: number;
  /**
   * Multiplier on the end-of-sequence token's output-head row. 1 (default): EOS is as likely as any token, so
   * answers practically never end before max_tokens. ~2.5: answers end after a few dozen tokens (tests of EOS).
   */
  eosScale?: number;
  ropeFreqBase?: number;
  rmsEpsilon?: number;
  /** Written as `tokenizer.chat_template` when given (Jinja); without it backends use their fallback template. */
  chatTemplate?: string;
  name?: string;
  /**
   * Makes an embedding model: writes `llama.pooling_type` (llama.cpp's LLAMA_POOLING_TYPE: mean 1, cls 2, last 3), which
   * llama.cpp's embedding context pools the hidden states by, and which Tessera's embedded backend reads to serve the
   * file as an embedding model (`/v1/embeddings`) rather than a chat model. Default: none (a generative model).
   */
  pooling?: TinyPooling;
  /** Where the extracted SPM vocabulary is cached. Default: `<dir of path>/.tessera-vocab`. */
  vocabCacheDir?: string;
}

export interface TinyModelInfo {
  path: string;
  sizeBytes: number;
  /** SHA-256 of the file, lowercase hex (how sharded models are identified). */
  sha256: string;
  parameterCount: number;
  vocabSize: number;
  bosId: number;
  eosId: number;
  weightType: TinyWeightType;
  seed: number;
  dims: TinyModelDims;
}

export const TINY_PRESETS: Record<TinyPreset, TinyModelDims & { weightType: TinyWeightType }> = {
  tiny: { embeddingLength: 64, blockCount: 2, headCount: 4, headCountKv: 2, feedForwardLength: 128, contextLength: 512, weightType: "f16" },
  "50m": { embeddingLength: 512, blockCount: 8, headCount: 8, headCountKv: 4, feedForwardLength: 1408, contextLength: 2048, weightType: "f16" },
};

const GGML_TYPE: Record<TinyWeightType, GgmlTypeName> = { f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0", q4_k_m: "Q4_K" };
// llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_BF16, MOSTLY_Q8_0, MOSTLY_Q4_K_M
const FILE_TYPE: Record<TinyWeightType, number> = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_k_m: 15 };
/** Row length each weight type needs (its block size). */
const BLOCK: Record<TinyWeightType, number> = { f32: 1, f16: 1, bf16: 1, q8_0: 32, q4_k_m: 256 };

/** llama.cpp's `use_more_bits`: the layers whose attn_v and ffn_down a Q4_K_M file keeps in Q6_K. */
function usesMoreBits(layer: number, layers: number): boolean {
  return layer < layers / 8 || layer >= (7 * layers) / 8 || (layer - Math.floor(layers / 8)) % 3 === 2;
}

function byteVocab(): SpmVocab {
  const tokens = ["<unk>", "<s>", "</s>"];
  const tokenTypes: number[] = [TokenType.unknown, TokenType.control, TokenType.control];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    tokenTypes.push(TokenType.byte);
  }
  // SentencePiece writes spaces as U+2581; without this token a space would become three byte tokens.
  tokens.push("\u2581");
  tokenTypes.push(TokenType.normal);
  return { tokens, scores: tokens.map(() => 0), tokenTypes, bosId: 1, eosId: 2, unknownId: 0 };
}

function validateDims(d: TinyModelDims, weightType: TinyWeightType): void {
  for (const [k, v] of Object.entries(d)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`makeTinyModel: ${k} must be a positive integer, got ${v}`);
  }
  if (d.embeddingLength % d.headCount !== 0) throw new Error("makeTinyModel: embeddingLength must be a multiple of headCount");
  if (d.headCount % d.headCountKv !== 0) throw new Error("makeTinyModel: headCount must be a multiple of headCountKv");
  if ((d.embeddingLength / d.headCount) % 2 !== 0) throw new Error("makeTinyModel: head size must be even (RoPE)");
  const block = BLOCK[weightType];
  if (d.embeddingLength % block !== 0 || d.feedForwardLength % block !== 0) {
    throw new Error(`makeTinyModel: ${weightType} needs embeddingLength and feedForwardLength to be multiples of ${block}`);
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function makeTinyModel(options: TinyModelOptions): Promise<TinyModelInfo> {
  const preset = TINY_PRESETS[options.preset ?? "tiny"];
  if (!preset) throw new Error(`makeTinyModel: unknown preset ${String(options.preset)}`);
  const dims: TinyModelDims = {
    embeddingLength: options.embeddingLength ?? preset.embeddingLength,
    blockCount: options.blockCount ?? preset.blockCount,
    headCount: options.headCount ?? preset.headCount,
    headCountKv: options.headCountKv ?? preset.headCountKv,
    feedForwardLength: options.feedForwardLength ?? preset.feedForwardLength,
    contextLength: options.contextLength ?? preset.contextLength,
  };
  const weightType = options.weightType ?? preset.weightType;
  if (!(weightType in GGML_TYPE)) throw new Error(`makeTinyModel: unknown weightType ${String(weightType)}`);
  validateDims(dims, weightType);
  const seed = options.seed ?? 1;
  const outputScale = options.outputScale ?? 16;
  const vocabKind = options.vocab ?? "spm";
  const vocab: SpmVocab =
    vocabKind === "bytes"
      ? byteVocab()
      : await loadSpmVocab(options.vocabCacheDir ?? join(dirname(options.path), ".tessera-vocab"));

  const n = dims.embeddingLength;
  const headSize = n / dims.headCount;
  const kvWidth = headSize * dims.headCountKv;
  const ff = dims.feedForwardLength;
  const nVocab = vocab.tokens.length;
  const wType = GGML_TYPE[weightType];
  const kMix = weightType === "q4_k_m";
  const headType: GgmlTypeName = kMix ? "Q6_K" : wType;
  const moreBitsType = (layer: number): GgmlTypeName => (kMix && usesMoreBits(layer, dims.blockCount) ? "Q6_K" : wType);
  const rng = new SeededRandom(seed);
  const ones = (count: number) => () => new Float32Array(count).fill(1);
  const normal = (count: number, std: number) => () => rng.normals(count, std);

  // Tensor names and shapes as llama.cpp's LLM_ARCH_LLAMA expects them; dims are ggml order (ne0 = input dim).
  const tensors: GgufTensorSource[] = [
    { name: "token_embd.weight", dims: [n, nVocab], type: wType, data: normal(n * nVocab, 1) },
    { name: "output_norm.weight", dims: [n], type: "F32", data: ones(n) },
    {
      name: "output.weight",
      dims: [n, nVocab],
      type: headType,
      data: () => {
        const head = rng.normals(n * nVocab, outputScale / Math.sqrt(n));
        const eosScale = options.eosScale ?? 1;
        for (let i = vocab.eosId * n; i < (vocab.eosId + 1) * n; i++) head[i] *= eosScale;
        return head;
      },
    },
  ];
  for (let i = 0; i < dims.blockCount; i++) {
    const p = `blk.${i}.`;
    tensors.push(
      { name: `${p}attn_norm.weight`, dims: [n], type: "F32", data: ones(n) },
      { name: `${p}attn_q.weight`, dims: [n, n], type: wType, data: normal(n * n, 1 / Math.sqrt(n)) },
      { name: `${p}attn_k.weight`, dims: [n, kvWidth], type: wType, data: normal(n * kvWidth, 1 / Math.sqrt(n)) },
      { name: `${p}attn_v.weight`, dims: [n, kvWidth], type: moreBitsType(i), data: normal(n * kvWidth, 1 / Math.sqrt(n)) },
      { name: `${p}attn_output.weight`, dims: [n, n], type: wType, data: normal(n * n, 1 / Math.sqrt(n)) },
      { name: `${p}ffn_norm.weight`, dims: [n], type: "F32", data: ones(n) },
      { name: `${p}ffn_gate.weight`, dims: [n, ff], type: wType, data: normal(n * ff, 1 / Math.sqrt(n)) },
      { name: `${p}ffn_up.weight`, dims: [n, ff], type: wType, data: normal(n * ff, 1 / Math.sqrt(n)) },
      { name: `${p}ffn_down.weight`, dims: [ff, n], type: moreBitsType(i), data: normal(ff * n, 1 / Math.sqrt(ff)) },
    );
  }

  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", gguf.str("llama")],
    ["general.name", gguf.str(options.name ?? `tessera-tiny-${vocabKind}-${weightType}-s${seed}`)],
    ["general.file_type", gguf.u32(FILE_TYPE[weightType])],
    ["llama.context_length", gguf.u32(dims.contextLength)],
    ["llama.embedding_length", gguf.u32(n)],
    ["llama.block_count", gguf.u32(dims.blockCount)],
    ["llama.feed_forward_length", gguf.u32(ff)],
    ["llama.attention.head_count", gguf.u32(dims.headCount)],
    ["llama.attention.head_count_kv", gguf.u32(dims.headCountKv)],
    ["llama.rope.dimension_count", gguf.u32(headSize)],
    ["llama.rope.freq_base", gguf.f32(options.ropeFreqBase ?? 10000)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(options.rmsEpsilon ?? 1e-5)],
    ["llama.vocab_size", gguf.u32(nVocab)],
    ["tokenizer.ggml.model", gguf.str("llama")],
    ["tokenizer.ggml.tokens", gguf.arr("string", vocab.tokens)],
    ["tokenizer.ggml.scores", gguf.arr("float32", vocab.scores)],
    ["tokenizer.ggml.token_type", gguf.arr("int32", vocab.tokenTypes)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(vocab.bosId)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(vocab.eosId)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(vocab.unknownId)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
  ];
  if (options.pooling !== undefined) metadata.push(["llama.pooling_type", gguf.u32(POOLING_TYPE_IDS[options.pooling])]);
  if (options.chatTemplate !== undefined) metadata.push(["tokenizer.chat_template", gguf.str(options.chatTemplate)]);

  const sizeBytes = await writeGguf(options.path, { metadata, tensors });
  const parameterCount = tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
  return {
    path: options.path,
    sizeBytes,
    sha256: await sha256File(options.path),
    parameterCount,
    vocabSize: nVocab,
    bosId: vocab.bosId,
    eosId: vocab.eosId,
    weightType,
    seed,
    dims,
  };
}
