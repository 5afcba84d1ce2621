/**
 * A WebAssembly SIMD kernel for F32 matrix-vector products, hand-assembled (no toolchain dependency), plus the one
 * linear memory ("arena") that holds dense weights so the kernel can stream them. Measured ~4x faster than the
 * scalar JS loop in weights.ts on decode (see bench/stage-runtime.ts); used when `cols % 16 === 0`.
 *
 * matvec(w, x, out, rows, cols): out[r] = Σ_i w[r*cols + i] * x[i], all byte offsets into the arena; four f32x4
 * accumulators over 16 floats per step, reduced lane-wise at the end of a row.
 */

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

function str(s: string): number[] {
  return [...leb(s.length), ...Buffer.from(s, "utf8")];
}

const SIMD = 0xfd;
const V128_LOAD = (offset: number) => [SIMD, 0x00, 0x00, ...leb(offset)];
const F32X4_ADD = [SIMD, 0xe4, 0x01];
const F32X4_MUL = [SIMD, 0xe6, 0x01];
const GET = (i: number) => [0x20, i];
const SET = (i: number) => [0x21, i];

// params: 0 w, 1 x, 2 out, 3 rows, 4 cols; locals: 5 r, 6 xp, 7 xend, 8 wp, 9 (unused i32), 10..13 v128 accumulators
function body(): number[] {
  const code: number[] = [];
  const accStep = (acc: number, off: number) => [...GET(acc), ...GET(8), ...V128_LOAD(off), ...GET(6), ...V128_LOAD(off), ...F32X4_MUL, ...F32X4_ADD, ...SET(acc)];
  code.push(...GET(0), ...SET(8)); // wp = w
  code.push(...GET(1), ...GET(4), 0x41, 2, 0x74, 0x6a, ...SET(7)); // xend = x + cols<<2
  code.push(0x02, 0x40, 0x03, 0x40); // block, loop (rows)
  code.push(...GET(5), ...GET(3), 0x4f, 0x0d, 1); // if r >= rows: br done
  for (let a = 10; a < 14; a++) code.push(SIMD, 0x0c, ...new Array(16).fill(0), ...SET(a));
  code.push(...GET(1), ...SET(6)); // xp = x
  code.push(0x03, 0x40); // loop (inner)
  code.push(...accStep(10, 0), ...accStep(11, 16), ...accStep(12, 32), ...accStep(13, 48));
  code.push(...GET(8), 0x41, ...[0xc0, 0x00], 0x6a, ...SET(8)); // wp += 64
  code.push(...GET(6), 0x41, ...[0xc0, 0x00], 0x6a, 0x22, 6); // xp += 64 (tee)
  code.push(...GET(7), 0x49, 0x0d, 0); // br_if inner (xp < xend)
  code.push(0x0b);
  code.push(...GET(10), ...GET(11), ...F32X4_ADD, ...GET(12), ...GET(13), ...F32X4_ADD, ...F32X4_ADD, ...SET(10));
  code.push(...GET(2), ...GET(5), 0x41, 2, 0x74, 0x6a); // address out + r<<2
  code.push(...GET(10), SIMD, 0x1f, 0, ...GET(10), SIMD, 0x1f, 1, 0x92, ...GET(10), SIMD, 0x1f, 2, ...GET(10), SIMD, 0x1f, 3, 0x92, 0x92);
  code.push(0x38, 2, 0); // f32.store
  code.push(...GET(5), 0x41, 1, 0x6a, ...SET(5)); // r++
  code.push(0x0c, 0, 0x0b, 0x0b, 0x0b); // br rows; end loop; end block; end func
  const locals = [2, 5, 0x7f, 4, 0x7b];
  const fn = [...locals, ...code];
  return [...leb(fn.length), ...fn];
}

const V128_CONST_I32 = (v: number) => [SIMD, 0x0c, ...[0, 1, 2, 3].flatMap(() => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff])];

/**
 * matvecF16(w, x, out, rows, cols): the same over F16 weights (half the memory traffic). A half h becomes a float as
 * bits((sext(h) << 13) & 0x8fffffff) * 2^112: exact for every finite half, subnormals included.
 */
function bodyF16(): number[] {
  const code: number[] = [];
  const conv = (extendOp: number) => [...GET(16), SIMD, extendOp, 0x01, 0x41, 13, SIMD, 0xab, 0x01, ...GET(15), SIMD, 0x4e, ...GET(14), ...F32X4_MUL];
  const half = (acc: number, extendOp: number, wOff: number, xOff: number) => [...GET(acc), ...conv(extendOp), ...GET(6), ...V128_LOAD(xOff), ...F32X4_MUL, ...F32X4_ADD, ...SET(acc)];
  code.push(...V128_CONST_I32(0x77800000), ...SET(14)); // 2^112 as f32
  code.push(...V128_CONST_I32(0x8fffffff | 0), ...SET(15));
  code.push(...GET(0), ...SET(8));
  code.push(...GET(1), ...GET(4), 0x41, 2, 0x74, 0x6a, ...SET(7));
  code.push(0x02, 0x40, 0x03, 0x40);
  code.push(...GET(5), ...GET(3), 0x4f, 0x0d, 1);
  for (let a = 10; a < 14; a++) code.push(SIMD, 0x0c, ...new Array(16).fill(0), ...SET(a));
  code.push(...GET(1), ...SET(6));
  code.push(0x03, 0x40);
  code.push(...GET(8), ...V128_LOAD(0), ...SET(16), ...half(10, 0xa7, 0, 0), ...half(11, 0xa8, 0, 16));
  code.push(...GET(8), ...V128_LOAD(16), ...SET(16), ...half(12, 0xa7, 0, 32), ...half(13, 0xa8, 0, 48));
  code.push(...GET(8), 0x41, 0x20, 0x6a, ...SET(8)); // wp += 32
  code.push(...GET(6), 0x41, ...[0xc0, 0x00], 0x6a, 0x22, 6); // xp += 64 (tee)
  code.push(...GET(7), 0x49, 0x0d, 0);
  code.push(0x0b);
  code.push(...GET(10), ...GET(11), ...F32X4_ADD, ...GET(12), ...GET(13), ...F32X4_ADD, ...F32X4_ADD, ...SET(10));
  code.push(...GET(2), ...GET(5), 0x41, 2, 0x74, 0x6a);
  code.push(...GET(10), SIMD, 0x1f, 0, ...GET(10), SIMD, 0x1f, 1, 0x92, ...GET(10), SIMD, 0x1f, 2, ...GET(10), SIMD, 0x1f, 3, 0x92, 0x92);
  code.push(0x38, 2, 0);
  code.push(...GET(5), 0x41, 1, 0x6a, ...SET(5));
  code.push(0x0c, 0, 0x0b, 0x0b, 0x0b);
  const locals = [2, 5, 0x7f, 7, 0x7b];
  const fn = [...locals, ...code];
  return [...leb(fn.length), ...fn];
}

function moduleBytes(): Uint8Array {
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...str("env"), ...str("memory"), 0x02, 0x00, 1]),
    ...section(3, [2, 0, 0]),
    ...section(7, [2, ...str("matvec"), 0x00, 0, ...str("matvecF16"), 0x00, 1]),
    ...section(10, [2, ...body(), ...bodyF16()]),
  ];
  return new Uint8Array(bytes);
}

/** The slice of the WebAssembly JS API used here (lib "dom" is not in this repo's tsconfig, so declared locally). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

type MatvecFn = (w: number, x: number, out: number, rows: number, cols: number) => void;

const PAGE = 65536;

/** The process-wide arena: weights are bump-allocated and never freed (a stage lives as long as its process). */
class WasmArena {
  readonly memory = new WA.Memory({ initial: 16, maximum: 65536 });
  readonly matvec: MatvecFn;
  readonly matvecF16: MatvecFn;
  private top = 64;
  private f32View = new Float32Array(this.memory.buffer);
  private u16View = new Uint16Array(this.memory.buffer);

  constructor() {
    const instance = new WA.Instance(new WA.Module(moduleBytes()), { env: { memory: this.memory } });
    this.matvec = instance.exports.matvec as MatvecFn;
    this.matvecF16 = instance.exports.matvecF16 as MatvecFn;
  }

  /** A Float32Array over the whole memory; refreshed after growth (growth detaches old views). */
  get heap(): Float32Array {
    if (this.f32View.buffer !== this.memory.buffer) this.f32View = new Float32Array(this.memory.buffer);
    return this.f32View;
  }

  /** A Uint16Array over the whole memory (F16 weights), refreshed after growth. */
  get heapU16(): Uint16Array {
    if (this.u16View.buffer !== this.memory.buffer) this.u16View = new Uint16Array(this.memory.buffer);
    return this.u16View;
  }

  /** Reserves `floats` floats (or `floats` halves when `bytesPerItem` is 2), 64-byte aligned; returns the byte offset. */
  alloc(floats: number, bytesPerItem = 4): number {
    const ptr = Math.ceil(this.top / 64) * 64;
    const end = ptr + floats * bytesPerItem;
    if (end > this.memory.buffer.byteLength) this.memory.grow(Math.ceil((end - this.memory.buffer.byteLength) / PAGE));
    this.top = end;
    return ptr;
  }
}

let arena: WasmArena | null | undefined;

/** The arena, or null where WebAssembly SIMD is unavailable (callers fall back to the JS kernels). */
export function wasmArena(): WasmArena | null {
  if (arena === undefined) {
    try {
      arena = new WasmArena();
    } catch {
      arena = null;
    }
  }
  return arena;
}

export type { WasmArena };
