/**
 * The process-wide WebAssembly arena: one linear memory holding dense, Q8_0 and K-quant weights (bump-allocated, never
 * freed: a stage lives as long as its process), per-request KV caches and kernel scratch (power-of-two blocks on free
 * lists, reused when a request is dropped), and the kernels of wasm-kernels.ts instantiated over it.
 */
import { TesseraError } from "@tessera/protocol";
import { assembleModule } from "./wasm-asm.js";
import { kernelIndex, MatvecPool } from "./matvec-pool.js";
import { KERNELS, PREFETCH_BYTES } from "./wasm-kernels.js";

/** The slice of the WebAssembly JS API used here (lib "dom" is not in this repo's tsconfig, so declared locally). */
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

type MatvecFn = (w: number, x: number, out: number, rows: number, cols: number) => void;
type MatvecStrideFn = (w: number, x: number, out: number, rows: number, cols: number, strideBytes: number) => void;
type RoundFn = (src: number, dst: number, n: number, scale: number) => void;
type WeightedSumFn = (v: number, p: number, out: number, cells: number, width: number, strideBytes: number) => void;
type MatvecQ8Fn = (wq: number, ws: number, xq: number, xs: number, out: number, rows: number, cols: number) => void;
type MatvecKFn = (wq: number, wScales: number, wd: number, xq: number, xd: number, xSums: number, out: number, rows: number, cols: number) => void;

const PAGE = 65536;
const ALIGN = 64;
/** 32-bit WebAssembly memory: 65536 pages of 64 KiB. */
const MAX_PAGES = 65536;

const F32_KERNEL = kernelIndex("matvecF32");
const F16_KERNEL = kernelIndex("matvecF16");
const BF16_KERNEL = kernelIndex("matvecBF16");
const Q8_KERNEL = kernelIndex("matvecQ8");
const Q4K_KERNEL = kernelIndex("matvecQ4K");
const Q6K_KERNEL = kernelIndex("matvecQ6K");

/** Products smaller than this many weights stay on the calling thread: waking the workers would cost more. */
const MIN_SPLIT_WEIGHTS = 1 << 16;

class WasmArena {
  readonly memory = new WA.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
  readonly roundF16: RoundFn;
  readonly roundBF16: (src: number, dst: number, n: number) => void;
  readonly weightedSumF16: WeightedSumFn;
  private readonly module: object;
  private readonly f32: MatvecFn;
  private readonly f16: MatvecStrideFn;
  private readonly bf16: MatvecStrideFn;
  private readonly q8: MatvecQ8Fn;
  private readonly q4k: MatvecKFn;
  private readonly q6k: MatvecKFn;
  private pool: MatvecPool | undefined;
  private top = ALIGN;
  private readonly freeBlocks = new Map<number, number[]>();
  private f32View = new Float32Array(this.memory.buffer);
  private u16View = new Uint16Array(this.memory.buffer);
  private i8View = new Int8Array(this.memory.buffer);
  private u8View = new Uint8Array(this.memory.buffer);
  private i16View = new Int16Array(this.memory.buffer);

  constructor() {
    this.module = new WA.Module(assembleModule(KERNELS, MAX_PAGES));
    const e = new WA.Instance(this.module, { env: { memory: this.memory } }).exports;
    this.f32 = e.matvecF32 as MatvecFn;
    this.f16 = e.matvecF16 as MatvecStrideFn;
    this.bf16 = e.matvecBF16 as MatvecStrideFn;
    this.roundF16 = e.roundF16 as RoundFn;
    this.roundBF16 = e.roundBF16 as (src: number, dst: number, n: number) => void;
    this.weightedSumF16 = e.weightedSumF16 as WeightedSumFn;
    this.q8 = e.matvecQ8 as MatvecQ8Fn;
    this.q4k = e.matvecQ4K as MatvecKFn;
    this.q6k = e.matvecQ6K as MatvecKFn;
  }

  /** Threads the matrix-vector products use (1: this one only); worker threads are started or ended to match. */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }
  set threads(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new TesseraError("bad_request", `stage threads must be a whole number from 1 to 256, got ${n}`);
    if (n === this.threads) return;
    this.pool?.close();
    this.pool = n > 1 ? new MatvecPool(this.module, this.memory, n) : undefined;
  }

  /** The pool when a product of rows x cols is worth splitting, else undefined. */
  private split(rows: number, cols: number): MatvecPool | undefined {
    const pool = this.pool;
    return pool && rows >= 2 * pool.threads && rows * cols >= MIN_SPLIT_WEIGHTS ? pool : undefined;
  }

  // The kernels (wasm-kernels.ts; bound, so they can be passed around), rows split across the pool's threads when that pays. Each part's pointers are
  // the whole product's moved on by its first row: weights by the bytes of a row, `out` by 4 bytes a row.

  readonly matvec = (w: number, x: number, out: number, rows: number, cols: number): void => {
    const pool = this.split(rows, cols);
    if (!pool) return this.f32(w, x, out, rows, cols);
    for (let p = 1; p < pool.threads; p++) {
      const r0 = pool.partStart(rows, p);
      pool.assign(p, F32_KERNEL, w + r0 * cols * 4, x, out + r0 * 4, pool.partStart(rows, p + 1) - r0, cols);
    }
    pool.start();
    this.f32(w, x, out, pool.partStart(rows, 1), cols);
    pool.finish();
  };

  readonly matvecF16 = (w: number, x: number, out: number, rows: number, cols: number, stride: number): void => {
    this.matvecHalf(this.f16, F16_KERNEL, w, x, out, rows, cols, stride);
  };

  readonly matvecBF16 = (w: number, x: number, out: number, rows: number, cols: number, stride: number): void => {
    this.matvecHalf(this.bf16, BF16_KERNEL, w, x, out, rows, cols, stride);
  };

  /** An F16 or BF16 product over rows `stride` bytes apart. */
  private matvecHalf(kernel: MatvecStrideFn, index: number, w: number, x: number, out: number, rows: number, cols: number, stride: number): void {
    const pool = this.split(rows, cols);
    if (!pool) return kernel(w, x, out, rows, cols, stride);
    for (let p = 1; p < pool.threads; p++) {
      const r0 = pool.partStart(rows, p);
      pool.assign(p, index, w + r0 * stride, x, out + r0 * 4, pool.partStart(rows, p + 1) - r0, cols, stride);
    }
    pool.start();
    kernel(w, x, out, pool.partStart(rows, 1), cols, stride);
    pool.finish();
  }

  readonly matvecQ8 = (wq: number, ws: number, xq: number, xs: number, out: number, rows: number, cols: number): void => {
    const pool = this.split(rows, cols);
    if (!pool) return this.q8(wq, ws, xq, xs, out, rows, cols);
    for (let p = 1; p < pool.threads; p++) {
      const r0 = pool.partStart(rows, p);
      pool.assign(p, Q8_KERNEL, wq + r0 * cols, ws + r0 * (cols / 32) * 4, xq, xs, out + r0 * 4, pool.partStart(rows, p + 1) - r0, cols);
    }
    pool.start();
    this.q8(wq, ws, xq, xs, out, pool.partStart(rows, 1), cols);
    pool.finish();
  };

  readonly matvecQ4K = (wq: number, wScales: number, wd: number, xq: number, xd: number, xSums: number, out: number, rows: number, cols: number): void => {
    this.matvecK(this.q4k, Q4K_KERNEL, cols / 2, cols / 16, cols / 32, wq, wScales, wd, xq, xd, xSums, out, rows, cols);
  };

  readonly matvecQ6K = (wq: number, wScales: number, wd: number, xq: number, xd: number, xSums: number, out: number, rows: number, cols: number): void => {
    this.matvecK(this.q6k, Q6K_KERNEL, cols, cols / 16, cols / 64, wq, wScales, wd, xq, xd, xSums, out, rows, cols);
  };

  /** A K-quant product; a row is `qBytes` of quants, `sBytes` of scales and `dBytes` of f32 `d`s (k-quants.ts). */
  private matvecK(
    kernel: MatvecKFn, index: number, qBytes: number, sBytes: number, dBytes: number,
    wq: number, wScales: number, wd: number, xq: number, xd: number, xSums: number, out: number, rows: number, cols: number,
  ): void {
    const pool = this.split(rows, cols);
    if (!pool) return kernel(wq, wScales, wd, xq, xd, xSums, out, rows, cols);
    for (let p = 1; p < pool.threads; p++) {
      const r0 = pool.partStart(rows, p);
      pool.assign(p, index, wq + r0 * qBytes, wScales + r0 * sBytes, wd + r0 * dBytes, xq, xd, xSums, out + r0 * 4, pool.partStart(rows, p + 1) - r0, cols);
    }
    pool.start();
    kernel(wq, wScales, wd, xq, xd, xSums, out, pool.partStart(rows, 1), cols);
    pool.finish();
  }

  /** A Float32Array over the whole memory; refreshed after growth (growth detaches old views). */
  get heap(): Float32Array {
    if (this.f32View.buffer !== this.memory.buffer) this.f32View = new Float32Array(this.memory.buffer);
    return this.f32View;
  }

  /** A Uint16Array over the whole memory (F16 weights and caches), refreshed after growth. */
  get heapU16(): Uint16Array {
    if (this.u16View.buffer !== this.memory.buffer) this.u16View = new Uint16Array(this.memory.buffer);
    return this.u16View;
  }

  /** An Int8Array over the whole memory (Q8_0 quants), refreshed after growth. */
  get heapI8(): Int8Array {
    if (this.i8View.buffer !== this.memory.buffer) this.i8View = new Int8Array(this.memory.buffer);
    return this.i8View;
  }

  /** A Uint8Array over the whole memory (K-quant nibbles and scales), refreshed after growth. */
  get heapU8(): Uint8Array {
    if (this.u8View.buffer !== this.memory.buffer) this.u8View = new Uint8Array(this.memory.buffer);
    return this.u8View;
  }

  /** An Int16Array over the whole memory (Q8_K quant sums), refreshed after growth. */
  get heapI16(): Int16Array {
    if (this.i16View.buffer !== this.memory.buffer) this.i16View = new Int16Array(this.memory.buffer);
    return this.i16View;
  }

  /** Reserves `items` items of `bytesPerItem` (4: floats), 64-byte aligned, for good; returns the byte offset. */
  alloc(items: number, bytesPerItem = 4): number {
    const ptr = Math.ceil(this.top / ALIGN) * ALIGN;
    const end = ptr + items * bytesPerItem;
    // The kernels' prefetch touches up to PREFETCH_BYTES past the last weight: that much stays mapped past the top.
    if (end + PREFETCH_BYTES > MAX_PAGES * PAGE) {
      throw new TesseraError("no_capacity", `the stage runtime's WebAssembly memory holds at most 4 GiB per process; ${Math.ceil(end / 2 ** 20)} MiB needed (load fewer layers per stage)`);
    }
    if (end + PREFETCH_BYTES > this.memory.buffer.byteLength) this.memory.grow(Math.ceil((end + PREFETCH_BYTES - this.memory.buffer.byteLength) / PAGE));
    this.top = end;
    return ptr;
  }

  /** A reusable block of at least `bytes` (rounded up to a power of two); give it back with freeBlock. */
  allocBlock(bytes: number): number {
    const size = arenaBlockSize(bytes);
    const free = this.freeBlocks.get(size);
    if (free && free.length > 0) return free.pop()!;
    return this.alloc(size, 1);
  }

  /** Returns a block from allocBlock(bytes) for reuse. */
  freeBlock(ptr: number, bytes: number): void {
    const size = arenaBlockSize(bytes);
    let free = this.freeBlocks.get(size);
    if (!free) this.freeBlocks.set(size, (free = []));
    free.push(ptr);
  }
}

/** The arena block allocBlock hands out for `bytes`: a power of two, at least the alignment. */
export function arenaBlockSize(bytes: number): number {
  let size = ALIGN;
  while (size < bytes) size *= 2;
  return size;
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

/**
 * How many threads the stage runtime's matrix-vector products use in this process (default 1). Worker threads
 * share the arena's memory; results are bit-identical whatever the count. Throws bad_request outside 1..256.
 */
export function setStageThreads(threads: number): void {
  const a = wasmArena();
  if (a) a.threads = threads;
  else if (threads !== 1) throw new TesseraError("bad_request", "stage threads need WebAssembly, which this runtime lacks");
}

/** A growable arena block (never shrunk), so steady-state decoding allocates nothing. */
export class ArenaBuffer {
  ptr = 0;
  bytes = 0;
  ensure(arena: WasmArena, bytes: number): number {
    if (this.bytes < bytes) {
      if (this.bytes > 0) arena.freeBlock(this.ptr, this.bytes);
      this.ptr = arena.allocBlock(bytes);
      this.bytes = bytes;
    }
    return this.ptr;
  }
}

/**
 * Copies n floats between typed arrays without creating subarray views (the decode loop allocates nothing per token);
 * used for the activation rows that go in and out of the arena (a few thousand floats a call).
 */
export function copyFloats(dst: Float32Array, dstOffset: number, src: Float32Array, srcOffset: number, n: number): void {
  for (let i = 0; i < n; i++) dst[dstOffset + i] = src[srcOffset + i];
}

export type { WasmArena };
