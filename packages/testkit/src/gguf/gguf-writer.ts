import { open } from "node:fs/promises";
import { float32ToBFloat16Bits } from "./bfloat16.js";
import { float32ToFloat16Bits } from "./float16.js";
import { encodeQ4K, encodeQ6K } from "./k-quants.js";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  type GgmlTypeName,
  GgufValueType,
  type GgufScalarTypeName,
  tensorByteSize,
} from "./gguf-format.js";

/**
 * A generic GGUF v3 writer: typed metadata key/values and tensors with ggml-order dims.
 * Contract: the same input gives the same bytes; tensor data providers are called once each, in order, only when
 * that tensor is written.
 */
export type GgufScalar =
  | { type: "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64"; value: number }
  | { type: "uint64" | "int64"; value: bigint | number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string };
export type GgufArray = { type: "array"; itemType: GgufScalarTypeName; value: readonly (number | bigint | boolean | string)[] };
export type GgufValue = GgufScalar | GgufArray;

/** Shorthands for metadata values. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: "uint32", value }),
  i32: (value: number): GgufValue => ({ type: "int32", value }),
  u64: (value: number | bigint): GgufValue => ({ type: "uint64", value }),
  f32: (value: number): GgufValue => ({ type: "float32", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  arr: (itemType: GgufScalarTypeName, value: readonly (number | bigint | boolean | string)[]): GgufValue => ({
    type: "array",
    itemType,
    value,
  }),
};

export interface GgufTensorSource {
  name: string;
  /** ggml order: dims[0] = ne0, the fastest-varying (input) dimension. */
  dims: number[];
  type: GgmlTypeName;
  /** Values in ggml memory order (ne0 fastest); length = product of dims. */
  data: () => Float32Array;
}

export interface GgufFileSpec {
  metadata: ReadonlyArray<readonly [key: string, value: GgufValue]>;
  tensors: readonly GgufTensorSource[];
  alignment?: number;
}

/** Growable little-endian byte sink for the header. */
class ByteSink {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
  u8(v: number) { this.ensure(1); this.buffer.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number) { this.ensure(1); this.buffer.writeInt8(v, this.length); this.length += 1; }
  u16(v: number) { this.ensure(2); this.buffer.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number) { this.ensure(2); this.buffer.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number) { this.ensure(4); this.buffer.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number) { this.ensure(4); this.buffer.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number) { this.ensure(4); this.buffer.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number) { this.ensure(8); this.buffer.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: number | bigint) { this.ensure(8); this.buffer.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint) { this.ensure(8); this.buffer.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  string(s: string) {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }
  padTo(alignment: number) { while (this.length % alignment !== 0) this.u8(0); }
  bytes(): Buffer { return this.buffer.subarray(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufScalarTypeName, value: number | bigint | boolean | string): void {
  const expect = (kind: string) => {
    if (typeof value !== kind && !(kind === "number" && typeof value === "bigint")) {
      throw new Error(`GGUF value of type ${type} must be a ${kind}, got ${typeof value}`);
    }
  };
  switch (type) {
    case "string": expect("string"); return sink.string(value as string);
    case "bool": expect("boolean"); return sink.u8(value ? 1 : 0);
    case "uint64": expect("number"); return sink.u64(value as number);
    case "int64": expect("number"); return sink.i64(value as number);
    default: break;
  }
  if (typeof value !== "number") throw new Error(`GGUF value of type ${type} must be a number`);
  switch (type) {
    case "uint8": return sink.u8(value);
    case "int8": return sink.i8(value);
    case "uint16": return sink.u16(value);
    case "int16": return sink.i16(value);
    case "uint32": return sink.u32(value);
    case "int32": return sink.i32(value);
    case "float32": return sink.f32(value);
    case "float64": return sink.f64(value);
  }
}

function writeValue(sink: ByteSink, value: GgufValue): void {
  sink.u32(GgufValueType[value.type]);
  if (value.type === "array") {
    sink.u32(GgufValueType[value.itemType]);
    sink.u64(value.value.length);
    for (const item of value.value) writeScalar(sink, value.itemType, item);
  } else {
    writeScalar(sink, value.type, value.value);
  }
}

/** Encodes float values as the bytes of one tensor type. Exported for the reader's and other tests. */
export function encodeTensor(type: GgmlTypeName, values: Float32Array): Buffer {
  if (type === "F32") return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  if (type === "F16") {
    const halves = new Uint16Array(values.length); // little-endian hosts only, as ggml itself assumes
    for (let i = 0; i < values.length; i++) halves[i] = float32ToFloat16Bits(values[i]);
    return Buffer.from(halves.buffer, halves.byteOffset, halves.byteLength);
  }
  if (type === "BF16") {
    const halves = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) halves[i] = float32ToBFloat16Bits(values[i]);
    return Buffer.from(halves.buffer, halves.byteOffset, halves.byteLength);
  }
  if (type === "Q4_K") return encodeQ4K(values);
  if (type === "Q6_K") return encodeQ6K(values);
  // Q8_0 as ggml's quantize_row_q8_0_ref: d = amax/127 stored as f16, q = round(x/d).
  const blocks = values.length / 32;
  const out = Buffer.alloc(blocks * 34);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    out.writeUInt16LE(float32ToFloat16Bits(d), b * 34);
    for (let j = 0; j < 32; j++) {
      const x = Math.fround(values[b * 32 + j] * id);
      out.writeInt8(Math.sign(x) * Math.round(Math.abs(x)), b * 34 + 2 + j); // C roundf: half away from zero
    }
  }
  return out;
}

/** Writes a GGUF v3 file. Returns the total byte size. */
export async function writeGguf(path: string, spec: GgufFileSpec): Promise<number> {
  const alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const metadata = [...spec.metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !metadata.some(([k]) => k === "general.alignment")) {
    metadata.push(["general.alignment", gguf.u32(alignment)]);
  }
  const names = new Set<string>();
  for (const t of spec.tensors) {
    if (names.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    names.add(t.name);
  }

  const header = new ByteSink();
  header.u32(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(spec.tensors.length);
  header.u64(metadata.length);
  for (const [key, value] of metadata) {
    header.string(key);
    writeValue(header, value);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of spec.tensors) {
    header.string(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(d);
    header.u32(GgmlType[t.type]);
    header.u64(offset);
    const size = tensorByteSize(t.type, t.dims);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  header.padTo(alignment);

  const file = await open(path, "w");
  try {
    let position = 0;
    const write = async (bytes: Uint8Array) => {
      await file.write(bytes, 0, bytes.length, position);
      position += bytes.length;
    };
    await write(header.bytes());
    for (let i = 0; i < spec.tensors.length; i++) {
      const t = spec.tensors[i];
      const values = t.data();
      const expected = t.dims.reduce((a, b) => a * b, 1);
      if (values.length !== expected) {
        throw new Error(`tensor ${t.name}: data has ${values.length} values, dims ${t.dims.join("×")} need ${expected}`);
      }
      const bytes = encodeTensor(t.type, values);
      await write(bytes);
      const pad = Math.ceil(sizes[i] / alignment) * alignment - sizes[i];
      if (pad > 0) await write(new Uint8Array(pad));
    }
    return position;
  } finally {
    await file.close();
  }
}
