/**
 * The vocabulary as bytes, for detokenizing where no tokenizer runs (the coordinator). SentencePiece (llama) rules
 * as llama.cpp's `token_to_piece` applies them without special tokens: `▁` → space, byte tokens `<0xNN>` (type 6)
 * → that byte, control/unused tokens (types 3, 5) → nothing; normal and user-defined tokens → their UTF-8 text.
 */
import { TesseraError, type VocabPieces } from "@tessera/protocol";
import type { GgufValue } from "../stage/gguf-reader.js";

const TOKEN_TYPE_CONTROL = 3;
const TOKEN_TYPE_UNUSED = 5;
const TOKEN_TYPE_BYTE = 6;

export function vocabPieces(metadata: Map<string, GgufValue>): VocabPieces {
  const model = metadata.get("tokenizer.ggml.model");
  if (model !== "llama") throw new TesseraError("bad_request", `sharded serving detokenizes SentencePiece ("llama") vocabularies only, this file has ${String(model)}`);
  const tokens = metadata.get("tokenizer.ggml.tokens");
  const types = metadata.get("tokenizer.ggml.token_type");
  if (!Array.isArray(tokens)) throw new TesseraError("bad_request", "the file has no tokenizer.ggml.tokens");
  const chunks: Buffer[] = [];
  const offsets = [0];
  let total = 0;
  for (let i = 0; i < tokens.length; i++) {
    const text = String(tokens[i]);
    const type = Array.isArray(types) ? Number(types[i]) : 1;
    let piece: Buffer;
    if (type === TOKEN_TYPE_CONTROL || type === TOKEN_TYPE_UNUSED) piece = Buffer.alloc(0);
    else if (type === TOKEN_TYPE_BYTE && /^<0x[0-9A-Fa-f]{2}>$/.test(text)) piece = Buffer.from([parseInt(text.slice(3, 5), 16)]);
    else piece = Buffer.from(text.replace(/\u2581/g, " "), "utf8");
    chunks.push(piece);
    total += piece.length;
    offsets.push(total);
  }
  return { bytes: Buffer.concat(chunks).toString("base64"), offsets };
}
