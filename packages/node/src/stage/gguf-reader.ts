/**
 * GGUF reader: parses the header, metadata and tensor table, then reads only the tensors asked for, by byte range.
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (versions 2 and 3, little-endian).
 * A tensor's dims are fastest-first (`dims[0]` is the row length), so a linear layer is row-major [n_out][n_in].
 */
import { closeSync, openSync, readSync, fstatSync } from "node:fs";
import { TesseraError } from "@tessera/protocol";

export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;

/** Elements per block and bytes per block of the tensor types this runtime can read. */
const TYPE_LAYOUT: Record<number, { name: string; block: number; bytes: number }> = {
  0: { name: "F32", block: 1, bytes: 4 },
  1: { name: "F16", block: 1, bytes: 2 },
  8: { name: "Q8_0", block: 32, bytes: 34 },
  12: { name: "Q4_K", block: 256, bytes: 144 },
  14: { name: "Q6_K", block: 256, bytes: 210 },
  30: { name: "BF16", block: 1, bytes: 2 },
};

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** Fastest-first, as in the file. */
  dims: number[];
  type: number;
  /** Absolute byte offset of the tensor's data in the file. */
  fileOffset: number;
  byteLength: number;
  elementCount: number;
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  /** Reads one tensor's raw bytes (a fresh Buffer, exactly `byteLength` long). */
  readTensor(name: string): Buffer;
  close(): void;
}

/** Whether the stage runtime can read and run tensors of this ggml type. */
export function isSupportedType(type: number): boolean {
  return TYPE_LAYOUT[type] !== undefined;
}

/** The names of the types the stage runtime runs, for error messages. */
export const SUPPORTED_TYPE_NAMES = Object.values(TYPE_LAYOUT).map((t) => t.name);

/** ggml's names of the types the runtime does not run (ggml.h's `ggml_type`), so a refusal can name them. */
const OTHER_TYPE_NAMES: Record<number, string> = {
  2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 13: "Q5_K", 15: "Q8_K",
  16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
  24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
};

export function ggmlTypeName(type: number): string {
  return TYPE_LAYOUT[type]?.name ?? OTHER_TYPE_NAMES[type] ?? `type ${type}`;
}

function bad(path: string, message: string): TesseraError {
  return new TesseraError("bad_request", `${path}: not a readable GGUF file: ${message}`);
}

class NeedMore extends Error {}

/** A cursor over the first bytes of the file; throws NeedMore when it runs past what was read. */
class Cursor {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMore();
  }
  u8(): number { this.need(1); return this.buf.readUInt8(this.pos++); }
  i8(): number { this.need(1); return this.buf.readInt8(this.pos++); }
  u16(): number { this.need(2); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v; }
  i16(): number { this.need(2); const v = this.buf.readInt16LE(this.pos); this.pos += 2; return v; }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  i32(): number { this.need(4); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v; }
  f32(): number { this.need(4); const v = this.buf.readFloatLE(this.pos); this.pos += 4; return v; }
  f64(): number { this.need(8); const v = this.buf.readDoubleLE(this.pos); this.pos += 8; return v; }
  u64(): bigint { this.need(8); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  i64(): bigint { this.need(8); const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v; }
  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  size(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`size ${v} too large`);
    return Number(v);
  }
  str(): string {
    const n = this.size();
    this.need(n);
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

function readValue(c: Cursor, type: number): GgufValue {
  switch (type) {
    case 0: return c.u8();
    case 1: return c.i8();
    case 2: return c.u16();
    case 3: return c.i16();
    case 4: return c.u32();
    case 5: return c.i32();
    case 6: return c.f32();
    case 7: return c.u8() !== 0;
    case 8: return c.str();
    case 9: {
      const itemType = c.u32();
      const n = c.size();
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, itemType);
      return out;
    }
    case 10: return c.u64();
    case 11: return c.i64();
    case 12: return c.f64();
    default: throw new RangeError(`unknown metadata value type ${type}`);
  }
}

function parseHeader(path: string, buf: Buffer, fileSize: number): Omit<GgufFile, "readTensor" | "close" | "path"> {
  const c = new Cursor(buf);
  if (buf.length < 4 || buf.toString("latin1", 0, 4) !== "GGUF") {
    if (buf.length < 4 && fileSize >= 4) throw new NeedMore();
    throw bad(path, "missing GGUF magic");
  }
  c.pos = 4;
  const version = c.u32();
  if (version !== 2 && version !== 3) throw bad(path, `unsupported GGUF version ${version}`);
  const nTensors = c.size();
  const nKv = c.size();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str();
    metadata.set(key, readValue(c, c.u32()));
  }
  const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str();
    const nDims = c.u32();
    if (nDims > 4) throw bad(path, `tensor ${name} has ${nDims} dims`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.size());
    const type = c.u32();
    const offset = c.size();
    infos.push({ name, dims, type, offset });
  }
  const alignmentValue = metadata.get("general.alignment");
  const alignment = typeof alignmentValue === "number" && alignmentValue > 0 ? alignmentValue : 32;
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    const elementCount = t.dims.reduce((a, b) => a * b, 1);
    const layout = TYPE_LAYOUT[t.type];
    // Unknown types still get an entry (so a file with e.g. Q5_K tensors parses); reading one is refused later.
    const byteLength = layout ? (elementCount / layout.block) * layout.bytes : 0;
    const fileOffset = dataStart + t.offset;
    if (layout && fileOffset + byteLength > fileSize) throw bad(path, `tensor ${t.name} runs past the end of the file`);
    tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, fileOffset, byteLength, elementCount });
  }
  return { version, metadata, tensors };
}

/** Opens a GGUF file and parses everything before the tensor data; tensor bytes are read only on demand. */
export function openGguf(path: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (cause) {
    throw new TesseraError("bad_request", `cannot open model file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const fileSize = fstatSync(fd).size;
    let want = Math.min(fileSize, 1 << 20);
    for (;;) {
      const buf = Buffer.alloc(want);
      const got = readSync(fd, buf, 0, want, 0);
      try {
        const header = parseHeader(path, buf.subarray(0, got), fileSize);
        return {
          path,
          ...header,
          readTensor(name: string): Buffer {
            const info = header.tensors.get(name);
            if (!info) throw new TesseraError("bad_request", `${path}: tensor ${name} is missing`);
            if (!TYPE_LAYOUT[info.type]) {
              throw new TesseraError("bad_request", `${path}: tensor ${name} has unsupported type ${ggmlTypeName(info.type)}`);
            }
            const out = Buffer.allocUnsafe(info.byteLength);
            let done = 0;
            while (done < info.byteLength) {
              const n = readSync(fd, out, done, info.byteLength - done, info.fileOffset + done);
              if (n === 0) throw bad(path, `short read in tensor ${name}`);
              done += n;
            }
            return out;
          },
          close(): void {
            closeSync(fd);
          },
        };
      } catch (err) {
        if (err instanceof NeedMore && want < fileSize) {
          want = Math.min(fileSize, want * 4);
          continue;
        }
        if (err instanceof NeedMore || err instanceof RangeError) throw bad(path, err instanceof RangeError ? err.message : "truncated header");
        throw err;
      }
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
