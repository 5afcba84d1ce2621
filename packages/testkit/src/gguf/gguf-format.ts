/**
 * GGUF v3 constants, as defined by ggml's gguf.h / docs/gguf.md. One definition each for the writer and the reader.
 */
export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (`gguf_type`). */
export const GgufValueType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufScalarTypeName = Exclude<keyof typeof GgufValueType, "array">;

/** Tensor element types (`ggml_type`) this toolkit writes. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Elements per block and bytes per block for each tensor type. */
export const GGML_BLOCK: Record<GgmlTypeName, { elements: number; bytes: number }> = {
  F32: { elements: 1, bytes: 4 },
  F16: { elements: 1, bytes: 2 },
  Q8_0: { elements: 32, bytes: 34 },
  Q4_K: { elements: 256, bytes: 144 },
  Q6_K: { elements: 256, bytes: 210 },
  BF16: { elements: 1, bytes: 2 },
};

/** Byte size of a tensor of `count` elements; throws when the row length does not fit the block size. */
export function tensorByteSize(type: GgmlTypeName, dims: readonly number[]): number {
  const block = GGML_BLOCK[type];
  if (dims[0] % block.elements !== 0) {
    throw new Error(`tensor type ${type} needs ne0 to be a multiple of ${block.elements}, got ${dims[0]}`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  return (count / block.elements) * block.bytes;
}

/** Token types in `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`). */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;
