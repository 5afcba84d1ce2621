/**
 * The shape each tensor of a Llama-family file must have for its LlamaConfig, as llama.cpp's loader requires them
 * (`create_tensor` with the expected ne; ggml order, dims[0] the row length). A runtime checks the tensors it loads
 * before building anything on them: ggml checks shapes with GGML_ASSERT, which aborts the process.
 */
import { TesseraError } from "@tessera/protocol";
import type { GgufFile } from "./gguf-reader.js";
import type { LlamaConfig } from "./llama-config.js";

/** The expected dims of tensor `name` (the last one a lower bound where `atLeastRows`); undefined for a tensor no span uses. */
function expectedDims(file: GgufFile, name: string, c: LlamaConfig): { dims: number[]; atLeastRows?: boolean } | undefined {
  const qDim = c.nHead * c.headDim;
  const kvDim = c.nHeadKv * c.headDim;
  const layer = /^blk\.\d+\.(\w+)\.weight$/.exec(name)?.[1];
  switch (layer ?? name) {
    case "attn_norm":
    case "ffn_norm":
    case "output_norm.weight":
      return { dims: [c.nEmbd] };
    case "attn_q":
      return { dims: [c.nEmbd, qDim] };
    case "attn_k":
    case "attn_v":
      return { dims: [c.nEmbd, kvDim] };
    case "attn_output":
      return { dims: [qDim, c.nEmbd] };
    case "ffn_gate":
    case "ffn_up":
      return { dims: [c.nEmbd, c.nFf] };
    case "ffn_down":
      return { dims: [c.nFf, c.nEmbd] };
    case "output.weight":
      return { dims: [c.nEmbd, c.nVocab] };
    case "token_embd.weight":
      // Every token id below nVocab needs a row; a file without output.weight uses it as the head, whose rows are the logits.
      return { dims: [c.nEmbd, c.nVocab], atLeastRows: file.tensors.has("output.weight") };
    case "rope_freqs.weight":
      return { dims: [c.nRot / 2] };
    default:
      return undefined;
  }
}

/** Throws bad_request naming the tensor when the file's tensor `name` does not have the shape the config implies. */
export function checkTensorShape(file: GgufFile, name: string, config: LlamaConfig): void {
  const info = file.tensors.get(name);
  const want = expectedDims(file, name, config);
  if (!info || !want) return;
  const last = want.dims.length - 1;
  const fits = info.dims.length === want.dims.length && want.dims.every((d, i) => (i === last && want.atLeastRows ? info.dims[i] >= d : info.dims[i] === d));
  if (!fits) {
    const shape = `[${want.dims.join(", ")}${want.atLeastRows ? " or more rows" : ""}]`;
    throw new TesseraError("bad_request", `${file.path}: tensor ${name} is [${info.dims.join(", ")}], the model's hyper-parameters need ${shape}`);
  }
}
