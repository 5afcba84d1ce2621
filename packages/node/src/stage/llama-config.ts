/**
 * Hyper-parameters of a Llama-family model from GGUF metadata (`<arch>.*` keys), with llama.cpp's defaults.
 */
import { TesseraError } from "@tessera/protocol";
import type { GgufFile, GgufValue } from "./gguf-reader.js";

export interface LlamaConfig {
  arch: string;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  /** Rotated dimensions per head (`rope.dimension_count`, default headDim). */
  nRot: number;
  ropeFreqBase: number;
  ropeFreqScale: number;
  rmsEps: number;
  nVocab: number;
  contextLength: number;
}

/** Architectures whose graph is llama.cpp's `llm_build_llama` with NORM rope (the ones this runtime implements). */
export const SUPPORTED_ARCHS = new Set(["llama"]);

function num(v: GgufValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

export function readLlamaConfig(file: GgufFile): LlamaConfig {
  const arch = file.metadata.get("general.architecture");
  if (typeof arch !== "string" || !SUPPORTED_ARCHS.has(arch)) {
    throw new TesseraError("bad_request", `${file.path}: architecture ${String(arch)} is not supported by the stage runtime (llama is)`);
  }
  const get = (key: string): number | undefined => num(file.metadata.get(`${arch}.${key}`));
  const need = (key: string): number => {
    const v = get(key);
    if (v === undefined) throw new TesseraError("bad_request", `${file.path}: metadata ${arch}.${key} is missing`);
    return v;
  };
  const nEmbd = need("embedding_length");
  const nHead = need("attention.head_count");
  const nHeadKv = get("attention.head_count_kv") ?? nHead;
  const headDim = get("attention.key_length") ?? nEmbd / nHead;
  const embd = file.tensors.get("token_embd.weight");
  const nVocab = get("vocab_size") ?? (embd ? embd.dims[1] : undefined);
  if (nVocab === undefined) throw new TesseraError("bad_request", `${file.path}: cannot tell the vocabulary size`);
  if (nHead % nHeadKv !== 0) throw new TesseraError("bad_request", `${file.path}: head_count ${nHead} is not a multiple of head_count_kv ${nHeadKv}`);
  if (!Number.isInteger(headDim) || headDim < 1) throw new TesseraError("bad_request", `${file.path}: the head size ${headDim} (embedding_length / head_count, or attention.key_length) is not a positive integer`);
  const nRot = get("rope.dimension_count") ?? headDim;
  if (!Number.isInteger(nRot) || nRot < 1 || nRot > headDim) throw new TesseraError("bad_request", `${file.path}: rope.dimension_count ${nRot} is not within the head size ${headDim}`);
  // As llama.cpp's load_hparams: the type defaults to linear, the factor falls back to the legacy rope.scale_linear
  // key, a factor of 0 means none, and type "none" never scales (llama_context's constructor).
  const scalingType = file.metadata.get(`${arch}.rope.scaling.type`) ?? "linear";
  if (scalingType !== "none" && scalingType !== "linear") {
    throw new TesseraError("bad_request", `${file.path}: rope scaling ${String(scalingType)} is not supported (none, linear are)`);
  }
  const scaleFactor = get("rope.scaling.factor") ?? get("rope.scale_linear");
  return {
    arch,
    nLayer: need("block_count"),
    nEmbd,
    nFf: need("feed_forward_length"),
    nHead,
    nHeadKv,
    headDim,
    nRot,
    ropeFreqBase: get("rope.freq_base") ?? 10000,
    ropeFreqScale: scalingType === "linear" && scaleFactor ? 1 / scaleFactor : 1,
    rmsEps: get("attention.layer_norm_rms_epsilon") ?? 1e-5,
    nVocab,
    contextLength: get("context_length") ?? 2048,
  };
}
