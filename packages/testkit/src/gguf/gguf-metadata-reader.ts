import { open } from "node:fs/promises";
import { GGUF_MAGIC, GgufValueType } from "./gguf-format.js";

/**
 * Reads only the header and metadata key/values of a GGUF v2/v3 file (no tensor table, no tensor data). Enough to
 * copy a vocabulary; the stage runtime has its own full reader. Arrays come back as plain JS arrays (64-bit integers
 * as bigint).
 */
export type GgufMetadataValue = number | bigint | boolean | string | GgufMetadataValue[];

export interface GgufMetadata {
  version: number;
  tensorCount: bigint;
  metadata: Map<string, GgufMetadataValue>;
}

const typeNames = Object.fromEntries(Object.entries(GgufValueType).map(([k, v]) => [v, k])) as Record<number, string>;

class Cursor {
  offset = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number) {
    if (this.offset + n > this.buf.length) throw new RangeError("truncated GGUF metadata");
  }
  u8() { this.need(1); return this.buf.readUInt8(this.offset++); }
  i8() { this.need(1); return this.buf.readInt8(this.offset++); }
  u16() { this.need(2); const v = this.buf.readUInt16LE(this.offset); this.offset += 2; return v; }
  i16() { this.need(2); const v = this.buf.readInt16LE(this.offset); this.offset += 2; return v; }
  u32() { this.need(4); const v = this.buf.readUInt32LE(this.offset); this.offset += 4; return v; }
  i32() { this.need(4); const v = this.buf.readInt32LE(this.offset); this.offset += 4; return v; }
  f32() { this.need(4); const v = this.buf.readFloatLE(this.offset); this.offset += 4; return v; }
  f64() { this.need(8); const v = this.buf.readDoubleLE(this.offset); this.offset += 8; return v; }
  u64() { this.need(8); const v = this.buf.readBigUInt64LE(this.offset); this.offset += 8; return v; }
  i64() { this.need(8); const v = this.buf.readBigInt64LE(this.offset); this.offset += 8; return v; }
  string() {
    const n = Number(this.u64());
    this.need(n);
    const s = this.buf.toString("utf8", this.offset, this.offset + n);
    this.offset += n;
    return s;
  }
}

function readValue(c: Cursor, type: number): GgufMetadataValue {
  switch (type) {
    case GgufValueType.uint8: return c.u8();
    case GgufValueType.int8: return c.i8();
    case GgufValueType.uint16: return c.u16();
    case GgufValueType.int16: return c.i16();
    case GgufValueType.uint32: return c.u32();
    case GgufValueType.int32: return c.i32();
    case GgufValueType.float32: return c.f32();
    case GgufValueType.bool: return c.u8() !== 0;
    case GgufValueType.string: return c.string();
    case GgufValueType.uint64: return c.u64();
    case GgufValueType.int64: return c.i64();
    case GgufValueType.float64: return c.f64();
    case GgufValueType.array: {
      const itemType = c.u32();
      const count = Number(c.u64());
      const items: GgufMetadataValue[] = new Array(count);
      for (let i = 0; i < count; i++) items[i] = readValue(c, itemType);
      return items;
    }
    default:
      throw new Error(`unknown GGUF value type ${type} (${typeNames[type] ?? "?"})`);
  }
}

/** Parses GGUF metadata from bytes that hold at least the whole metadata section. */
export function parseGgufMetadata(bytes: Buffer): GgufMetadata {
  const c = new Cursor(bytes);
  if (c.u32() !== GGUF_MAGIC) throw new Error("not a GGUF file (bad magic)");
  const version = c.u32();
  if (version !== 2 && version !== 3) throw new Error(`unsupported GGUF version ${version}`);
  const tensorCount = c.u64();
  const kvCount = Number(c.u64());
  const metadata = new Map<string, GgufMetadataValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string();
    metadata.set(key, readValue(c, c.u32()));
  }
  return { version, tensorCount, metadata };
}

/** Reads a file's metadata, growing the read window until the metadata section fits. */
export async function readGgufMetadata(path: string): Promise<GgufMetadata> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    let window = Math.min(size, 1 << 20);
    for (;;) {
      const buf = Buffer.alloc(window);
      await file.read(buf, 0, window, 0);
      try {
        return parseGgufMetadata(buf);
      } catch (error) {
        if (!(error instanceof RangeError) || window >= size) throw error;
        window = Math.min(size, window * 4);
      }
    }
  } finally {
    await file.close();
  }
}
