import { type EmbeddingInputList, TesseraError, decodeEmbedding } from "@tessera/protocol";

/** How many inputs an embedding request carries. */
export function embeddingInputCount(input: EmbeddingInputList): number {
  return "texts" in input ? input.texts.length : input.tokens.length;
}

/**
 * One vector from a backend's answer: a list of finite numbers, or base64 of little-endian float32 (a server that
 * answers `encoding_format: base64` whatever it was asked). Throws `internal_error` naming the backend otherwise.
 */
export function vectorFrom(kind: string, value: unknown, index: number): number[] | Float32Array {
  if (typeof value === "string") {
    const decoded = decodeEmbedding(value);
    if (decoded) return decoded;
  } else if (Array.isArray(value) && value.every((x) => typeof x === "number" && Number.isFinite(x))) {
    return value as number[];
  }
  throw new TesseraError("internal_error", `${kind}: embedding ${index} is not a list of finite numbers`);
}

/** A backend's token count, when it is a sane one; 0 when it sent none. */
export function tokenCountFrom(value: unknown): number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0;
}
