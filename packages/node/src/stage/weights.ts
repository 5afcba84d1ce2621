/**
 * Loaded weight matrices and the matrix-product kernels over them.
 *
 * Contract: a matrix is row-major [rows = n_out][cols = n_in] (GGUF's layout for linear layers). `matmul` computes
 * out[t][r] = W[r] · x[t] for every token row t, with the activation first converted to the weight's ggml
 * `vec_dot_type` exactly as llama.cpp's CPU backend does (see design.md): F16 weights -> activation rounded to F16,
 * BF16 weights -> activation rounded to BF16,
 * Q8_0 weights -> activation quantised to Q8_0, Q4_K/Q6_K weights -> activation quantised to Q8_K (k-quants.ts). F16 and BF16 weights stay 16-bit in the
 * WASM arena and are converted inside the kernel; the product of two F16 (or two BF16) values is exact in F32, so only the summation order differs from ggml. Every input
 * row is converted once (rounded and pre-scaled, or quantised) and shared by the matrices that read it (`matmulMany`).
 */
import { TesseraError } from "@tessera/protocol";
import { F16_TO_F32, f32ToF16Bits } from "./f16.js";
import { GGML_TYPE, ggmlTypeName, type GgufTensorInfo } from "./gguf-reader.js";
import { kQuantResidentBytes, kQuantRow, loadKQuant, q8kDOffset, q8kRowBytes, q8kSumsOffset, quantizeQ8K, type KQuantMatrix } from "./k-quants.js";
import { F16_INPUT_SCALE } from "./wasm-kernels.js";
import { ArenaBuffer, copyFloats, wasmArena, type WasmArena } from "./wasm-matvec.js";

export interface DenseMatrix {
  kind: "dense";
  rows: number;
  cols: number;
  /** The weights in JS memory, when they are not in the WASM arena. */
  data: Float32Array | undefined;
  /** Byte offset of the weights in the WASM arena (SIMD kernel), when they live there. */
  wasmPtr: number | undefined;
  /** True when the arena holds the weights as 16-bit values, F16 or BF16 as `input` says (converted inside the kernel). */
  wasmHalf: boolean;
  /** The activation's ggml vec_dot_type: the file's F16 or BF16 rounds the activation to it before the dot products. */
  input: DenseInput;
}

export type DenseInput = "f32" | "f16" | "bf16";

export interface Q8Matrix {
  kind: "q8_0";
  rows: number;
  cols: number;
  /** Quants, row-major, `rows * cols` int8 (in JS memory when there is no WASM arena). */
  qs: Int8Array | undefined;
  /** One scale per block of 32 along a row, `rows * cols / 32` (in JS memory when there is no WASM arena). */
  scales: Float32Array | undefined;
  /** Byte offsets of the quants and the scales in the WASM arena, when they live there. */
  wasmQs: number | undefined;
  wasmScales: number | undefined;
}

export type Matrix = DenseMatrix | Q8Matrix | KQuantMatrix;

export const Q8_BLOCK = 32;

/** Reusable buffers for converted activations; grown, never shrunk, so decoding allocates nothing. */
export class MatmulScratch {
  f32 = new Float32Array(0);
  q8 = new Int8Array(0);
  q8Scales = new Float32Array(0);
  /** Arena copies of the input rows: as given (F32 weights), rounded to F16 and pre-scaled, quantised to Q8_0. */
  readonly wasmIn = new ArenaBuffer();
  readonly wasmHalfIn = new ArenaBuffer();
  readonly wasmBF16In = new ArenaBuffer();
  readonly wasmQ8In = new ArenaBuffer();
  readonly wasmQ8Scales = new ArenaBuffer();
  readonly wasmQ8K = new ArenaBuffer();
  readonly wasmOut = new ArenaBuffer();
  /** Arena offsets of the current input rows once converted (-1: not yet), valid until inputChanged(). */
  inF32 = -1;
  inHalf = -1;
  inBF16 = -1;
  inQ8 = -1;
  inQ8K = -1;
  inputChanged(): void {
    this.inF32 = -1;
    this.inHalf = -1;
    this.inBF16 = -1;
    this.inQ8 = -1;
    this.inQ8K = -1;
  }
  ensure(n: number): void {
    if (this.f32.length < n) this.f32 = new Float32Array(n);
    if (this.q8.length < n) {
      this.q8 = new Int8Array(n);
      this.q8Scales = new Float32Array(Math.ceil(n / Q8_BLOCK));
    }
  }
}

function decodeF32(buf: Buffer, n: number): Float32Array {
  const out = new Float32Array(n);
  // Copy into an aligned buffer; the source Buffer may sit at any byte offset.
  new Uint8Array(out.buffer).set(buf.subarray(0, n * 4));
  return out;
}

function decodeF16(buf: Buffer, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = F16_TO_F32[buf[2 * i] | (buf[2 * i + 1] << 8)];
  return out;
}

function decodeBF16(buf: Buffer, n: number): Float32Array {
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) u[i] = ((buf[2 * i] | (buf[2 * i + 1] << 8)) << 16) >>> 0;
  return out;
}

const bf16Scratch = new Float32Array(1);
const bf16Bits = new Uint32Array(bf16Scratch.buffer);

/** `v` rounded to BF16 (nearest even, as ggml_compute_fp32_to_bf16), as a float; NaN stays NaN. */
export function roundToBF16(v: number): number {
  bf16Scratch[0] = v;
  const x = bf16Bits[0];
  if ((x & 0x7fffffff) > 0x7f800000) return v;
  bf16Bits[0] = ((x + 0x7fff + ((x >>> 16) & 1)) & 0xffff0000) >>> 0;
  return bf16Scratch[0];
}

/** The float value of the 16-bit weight `bits` of a matrix stored as `input` (F16 or BF16). */
function halfToF32(bits: number, input: DenseInput): number {
  if (input === "f16") return F16_TO_F32[bits];
  bf16Bits[0] = bits << 16;
  return bf16Scratch[0];
}

/** A 1-D F32/F16 tensor (norm weights, rope frequency factors) as floats. */
export function loadVector(buf: Buffer, info: GgufTensorInfo): Float32Array {
  if (info.type === GGML_TYPE.F32) return decodeF32(buf, info.elementCount);
  if (info.type === GGML_TYPE.F16) return decodeF16(buf, info.elementCount);
  if (info.type === GGML_TYPE.BF16) return decodeBF16(buf, info.elementCount);
  throw new TesseraError("bad_request", `tensor ${info.name}: type ${ggmlTypeName(info.type)} is not supported for a vector`);
}

/** Dense F32 weights go to the WASM arena when the SIMD kernel can take them (rows a multiple of 16 floats). */
function dense(rows: number, cols: number, data: Float32Array, input: DenseInput): DenseMatrix {
  const arena = cols % 16 === 0 ? wasmArena() : null;
  if (!arena) return { kind: "dense", rows, cols, data, wasmPtr: undefined, wasmHalf: false, input };
  const ptr = arena.alloc(data.length);
  arena.heap.set(data, ptr >> 2);
  return { kind: "dense", rows, cols, data: undefined, wasmPtr: ptr, wasmHalf: false, input };
}

/**
 * F16 and BF16 weights stay 16-bit in the arena: half the memory and traffic of widened F32 (rows a multiple of 8
 * values). Without the arena, or for other widths, they are widened to F32 (twice the file's size).
 */
function denseHalf(rows: number, cols: number, buf: Buffer, input: "f16" | "bf16"): DenseMatrix {
  const arena = cols % 8 === 0 ? wasmArena() : null;
  if (!arena) return dense(rows, cols, input === "f16" ? decodeF16(buf, rows * cols) : decodeBF16(buf, rows * cols), input);
  const ptr = arena.alloc(rows * cols, 2);
  new Uint8Array(arena.memory.buffer, ptr, rows * cols * 2).set(buf.subarray(0, rows * cols * 2));
  return { kind: "dense", rows, cols, data: undefined, wasmPtr: ptr, wasmHalf: true, input };
}

/** The dense weights as a Float32Array view (a fresh view: the arena's buffer changes when it grows). */
export function denseData(m: DenseMatrix): Float32Array {
  if (m.data) return m.data;
  if (m.wasmHalf) {
    const base = m.wasmPtr! >> 1;
    const halves = wasmArena()!.heapU16;
    const out = new Float32Array(m.rows * m.cols);
    for (let i = 0; i < out.length; i++) out[i] = halfToF32(halves[base + i], m.input);
    return out;
  }
  const ptr = m.wasmPtr! >> 2;
  return wasmArena()!.heap.subarray(ptr, ptr + m.rows * m.cols);
}

/**
 * Bytes a tensor takes once loaded (what a node must have free for it), which is not always its size in the file:
 * 1-D tensors (and F16/BF16 rows not a multiple of 8) are widened to F32, Q8_0 scales to f32, Q6_K quants unpacked to a
 * byte each (k-quants.ts).
 */
export function residentBytes(info: GgufTensorInfo): number {
  const n = info.elementCount;
  if (info.dims.length < 2 && info.type !== GGML_TYPE.Q8_0) return 4 * n; // loadVector, or a 1-row matrix widened
  switch (info.type) {
    case GGML_TYPE.F16:
    case GGML_TYPE.BF16:
      return info.dims[0] % 8 === 0 ? 2 * n : 4 * n;
    case GGML_TYPE.Q8_0:
      return n + (n / Q8_BLOCK) * 4;
    case GGML_TYPE.Q4_K:
    case GGML_TYPE.Q6_K:
      return kQuantResidentBytes(info);
    default:
      return 4 * n;
  }
}

export function loadMatrix(buf: Buffer, info: GgufTensorInfo): Matrix {
  const cols = info.dims[0];
  const rows = info.dims.length > 1 ? info.elementCount / cols : 1;
  switch (info.type) {
    case GGML_TYPE.F32:
      return dense(rows, cols, decodeF32(buf, info.elementCount), "f32");
    case GGML_TYPE.F16:
      return denseHalf(rows, cols, buf, "f16");
    case GGML_TYPE.BF16:
      return denseHalf(rows, cols, buf, "bf16");
    case GGML_TYPE.Q8_0: {
      const nBlocks = info.elementCount / Q8_BLOCK;
      const arena = wasmArena();
      const wasmQs = arena ? arena.alloc(info.elementCount, 1) : undefined;
      const wasmScales = arena ? arena.alloc(nBlocks) : undefined;
      const qs = arena ? arena.heapI8.subarray(wasmQs!, wasmQs! + info.elementCount) : new Int8Array(info.elementCount);
      const scales = arena ? arena.heap.subarray(wasmScales! >> 2, (wasmScales! >> 2) + nBlocks) : new Float32Array(nBlocks);
      const src = new Int8Array(buf.buffer, buf.byteOffset, buf.length);
      for (let b = 0; b < nBlocks; b++) {
        const o = b * 34;
        scales[b] = F16_TO_F32[buf[o] | (buf[o + 1] << 8)];
        qs.set(src.subarray(o + 2, o + 34), b * Q8_BLOCK);
      }
      if (arena) return { kind: "q8_0", rows, cols, qs: undefined, scales: undefined, wasmQs, wasmScales };
      return { kind: "q8_0", rows, cols, qs, scales, wasmQs: undefined, wasmScales: undefined };
    }
    case GGML_TYPE.Q4_K:
    case GGML_TYPE.Q6_K:
      return loadKQuant(buf, info);
    default:
      throw new TesseraError("bad_request", `tensor ${info.name}: type ${ggmlTypeName(info.type)} is not supported (F32, F16, BF16, Q8_0, Q4_K, Q6_K are)`);
  }
}

/** Writes row `row` of `m` as floats into `out[outOffset..)` (embedding lookup, ggml get_rows). */
export function getRow(m: Matrix, row: number, out: Float32Array, outOffset: number): void {
  const n = m.cols;
  if (m.kind === "dense" && m.wasmHalf) {
    const halves = wasmArena()!.heapU16;
    const base = (m.wasmPtr! >> 1) + row * n;
    for (let i = 0; i < n; i++) out[outOffset + i] = halfToF32(halves[base + i], m.input);
    return;
  }
  if (m.kind === "dense") {
    out.set(denseData(m).subarray(row * n, row * n + n), outOffset);
    return;
  }
  if (m.kind !== "q8_0") {
    kQuantRow(m, row, out, outOffset);
    return;
  }
  const { qs, scales } = q8Arrays(m);
  for (let i = 0; i < n; i++) out[outOffset + i] = qs[row * n + i] * scales[(row * n + i) >> 5];
}

/** The quants and scales of a Q8_0 matrix as typed arrays (fresh views when they live in the arena). */
function q8Arrays(m: Q8Matrix): { qs: Int8Array; scales: Float32Array } {
  if (m.qs && m.scales) return { qs: m.qs, scales: m.scales };
  const arena = wasmArena()!;
  const nBlocks = (m.rows * m.cols) / Q8_BLOCK;
  return {
    qs: arena.heapI8.subarray(m.wasmQs!, m.wasmQs! + m.rows * m.cols),
    scales: arena.heap.subarray(m.wasmScales! >> 2, (m.wasmScales! >> 2) + nBlocks),
  };
}

/** Round half to even, as `_mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT)` in ggml's AVX2 quantize_row_q8_0. */
function rint(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** Quantises `n` floats (n a multiple of 32) to Q8_0 as ggml's quantize_row_q8_0: d = amax/127 stored as F16. */
export function quantizeQ8(x: Float32Array, xOff: number, n: number, qs: Int8Array, qOff: number, scales: Float32Array, sOff: number): void {
  for (let b = 0; b < n / Q8_BLOCK; b++) {
    const base = xOff + b * Q8_BLOCK;
    let amax = 0;
    for (let i = 0; i < Q8_BLOCK; i++) {
      const a = Math.abs(x[base + i]);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    scales[sOff + b] = F16_TO_F32[f32ToF16Bits(d)];
    const qb = qOff + b * Q8_BLOCK;
    for (let i = 0; i < Q8_BLOCK; i++) qs[qb + i] = rint(Math.fround(x[base + i] * id));
  }
}

function dotDense(w: Float32Array, wOff: number, x: Float32Array, xOff: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  const n4 = n & ~3;
  for (; i < n4; i += 4) {
    s0 += w[wOff + i] * x[xOff + i];
    s1 += w[wOff + i + 1] * x[xOff + i + 1];
    s2 += w[wOff + i + 2] * x[xOff + i + 2];
    s3 += w[wOff + i + 3] * x[xOff + i + 3];
  }
  for (; i < n; i++) s0 += w[wOff + i] * x[xOff + i];
  return s0 + s1 + s2 + s3;
}

function dotQ8(qw: Int8Array, sw: Float32Array, wOff: number, qx: Int8Array, sx: Float32Array, xOff: number, n: number): number {
  let sum = 0;
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const wo = wOff + (b << 5);
    const xo = xOff + (b << 5);
    let acc = 0;
    for (let i = 0; i < 32; i += 4) {
      acc += qw[wo + i] * qx[xo + i] + qw[wo + i + 1] * qx[xo + i + 1] + qw[wo + i + 2] * qx[xo + i + 2] + qw[wo + i + 3] * qx[xo + i + 3];
    }
    sum += Math.fround(sw[(wOff >> 5) + b] * sx[(xOff >> 5) + b]) * acc;
  }
  return sum;
}

/**
 * out[t * outStride + outOffset + r] = W[r] · x[t * cols ..] for t < nTok, r < rows.
 * `x` is [nTok][cols] row-major and is not modified.
 */
export function matmul(m: Matrix, x: Float32Array, nTok: number, out: Float32Array, scratch: MatmulScratch, outStride = m.rows, outOffset = 0): void {
  scratch.inputChanged();
  matmulInto(m, x, nTok, out, scratch, outStride, outOffset);
}

/**
 * outs[k][t][r] = ms[k][r] · x[t] for matrices that read the same input rows (q/k/v, gate/up): the input is
 * converted to each weight type's ggml vec_dot_type once, not once per matrix.
 */
export function matmulMany(ms: readonly Matrix[], x: Float32Array, nTok: number, outs: readonly Float32Array[], scratch: MatmulScratch): void {
  scratch.inputChanged();
  for (let k = 0; k < ms.length; k++) {
    if (ms[k].cols !== ms[0].cols) throw new Error(`matmulMany: matrices of different widths (${ms[k].cols} vs ${ms[0].cols})`);
    matmulInto(ms[k], x, nTok, outs[k], scratch, ms[k].rows, 0);
  }
}

/** One matrix over input rows that may already be converted in `scratch` (since the last inputChanged()). */
function matmulInto(m: Matrix, x: Float32Array, nTok: number, out: Float32Array, scratch: MatmulScratch, stride: number, outOffset: number): void {
  const cols = m.cols;
  if (m.kind === "q4_k" || m.kind === "q6_k") {
    const a = wasmArena()!;
    const rowBytes = q8kRowBytes(cols);
    if (scratch.inQ8K < 0) quantizeQ8K(a, x, nTok, cols, (scratch.inQ8K = scratch.wasmQ8K.ensure(a, nTok * rowBytes)));
    const kernel = m.kind === "q4_k" ? a.matvecQ4K : a.matvecQ6K;
    const o = scratch.wasmOut.ensure(a, m.rows * 4);
    for (let t = 0; t < nTok; t++) {
      const xq = scratch.inQ8K + t * rowBytes;
      kernel(m.quants, m.scales, m.d, xq, xq + q8kDOffset(cols), xq + q8kSumsOffset(cols), o, m.rows, cols);
      copyFloats(out, t * stride + outOffset, a.heap, o >> 2, m.rows);
    }
  } else if (m.kind === "dense" && m.wasmPtr !== undefined) {
    const a = wasmArena()!;
    let xPtr: number;
    if (m.input === "f16") xPtr = scratch.inHalf >= 0 ? scratch.inHalf : (scratch.inHalf = toArenaHalf(a, x, nTok * cols, scratch));
    else if (m.input === "bf16") xPtr = scratch.inBF16 >= 0 ? scratch.inBF16 : (scratch.inBF16 = toArenaBF16(a, x, nTok * cols, scratch));
    else xPtr = scratch.inF32 >= 0 ? scratch.inF32 : (scratch.inF32 = toArena(a, x, nTok * cols, scratch));
    const o = scratch.wasmOut.ensure(a, m.rows * 4);
    for (let t = 0; t < nTok; t++) {
      if (!m.wasmHalf) a.matvec(m.wasmPtr, xPtr + t * cols * 4, o, m.rows, cols);
      else if (m.input === "f16") a.matvecF16(m.wasmPtr, xPtr + t * cols * 4, o, m.rows, cols, cols * 2);
      else a.matvecBF16(m.wasmPtr, xPtr + t * cols * 4, o, m.rows, cols, cols * 2);
      copyFloats(out, t * stride + outOffset, a.heap, o >> 2, m.rows);
    }
  } else if (m.kind === "q8_0" && m.wasmQs !== undefined) {
    const a = wasmArena()!;
    if (scratch.inQ8 < 0) scratch.inQ8 = toArenaQ8(a, x, nTok, cols, scratch);
    const o = scratch.wasmOut.ensure(a, m.rows * 4);
    for (let t = 0; t < nTok; t++) {
      a.matvecQ8(m.wasmQs, m.wasmScales!, scratch.inQ8 + t * cols, scratch.wasmQ8Scales.ptr + (t * cols) / 8, o, m.rows, cols);
      copyFloats(out, t * stride + outOffset, a.heap, o >> 2, m.rows);
    }
  } else if (m.kind === "dense" || m.kind === "q8_0") {
    matmulJs(m, x, nTok, out, scratch, stride, outOffset);
  }
}

/** Copies n floats into the arena's input buffer. */
function toArena(a: WasmArena, x: Float32Array, n: number, scratch: MatmulScratch): number {
  const ptr = scratch.wasmIn.ensure(a, n * 4);
  copyFloats(a.heap, ptr >> 2, x, 0, n);
  return ptr;
}

/** Copies n floats into the arena, rounded to F16 and pre-scaled by 2^112 for matvecF16 (one SIMD pass). */
function toArenaHalf(a: WasmArena, x: Float32Array, n: number, scratch: MatmulScratch): number {
  const n4 = (n + 3) & ~3;
  const ptr = scratch.wasmHalfIn.ensure(a, n4 * 4);
  const heap = a.heap;
  copyFloats(heap, ptr >> 2, x, 0, n);
  heap.fill(0, (ptr >> 2) + n, (ptr >> 2) + n4);
  a.roundF16(ptr, ptr, n4, F16_INPUT_SCALE);
  return ptr;
}

/** Copies n floats into the arena, rounded to BF16 for matvecBF16 (or a widened BF16 matrix's matvec). */
function toArenaBF16(a: WasmArena, x: Float32Array, n: number, scratch: MatmulScratch): number {
  const n4 = (n + 3) & ~3;
  const ptr = scratch.wasmBF16In.ensure(a, n4 * 4);
  copyFloats(a.heap, ptr >> 2, x, 0, n);
  a.heap.fill(0, (ptr >> 2) + n, (ptr >> 2) + n4);
  a.roundBF16(ptr, ptr, n4);
  return ptr;
}

/** Quantises nTok rows to Q8_0 into the arena (quants, then the scales in scratch.wasmQ8Scales). */
function toArenaQ8(a: WasmArena, x: Float32Array, nTok: number, cols: number, scratch: MatmulScratch): number {
  const n = nTok * cols;
  scratch.ensure(n);
  const { q8, q8Scales } = scratch;
  for (let t = 0; t < nTok; t++) quantizeQ8(x, t * cols, cols, q8, t * cols, q8Scales, (t * cols) >> 5);
  const qPtr = scratch.wasmQ8In.ensure(a, n);
  const sPtr = scratch.wasmQ8Scales.ensure(a, (n / Q8_BLOCK) * 4);
  const i8 = a.heapI8;
  for (let i = 0; i < n; i++) i8[qPtr + i] = q8[i];
  copyFloats(a.heap, sPtr >> 2, q8Scales, 0, n / Q8_BLOCK);
  return qPtr;
}

/** The scalar JS kernels: used where WebAssembly is unavailable or a row width does not suit the SIMD kernels. */
function matmulJs(m: DenseMatrix | Q8Matrix, x: Float32Array, nTok: number, out: Float32Array, scratch: MatmulScratch, outStride: number, outOffset: number): void {
  const { rows, cols } = m;
  scratch.ensure(nTok * cols);
  if (m.kind === "dense") {
    let xs = x;
    if (m.input === "f16") {
      xs = scratch.f32;
      for (let i = 0, n = nTok * cols; i < n; i++) xs[i] = F16_TO_F32[f32ToF16Bits(x[i])];
    } else if (m.input === "bf16") {
      xs = scratch.f32;
      for (let i = 0, n = nTok * cols; i < n; i++) xs[i] = roundToBF16(x[i]);
    }
    const w = denseData(m);
    for (let r = 0; r < rows; r++) {
      const wOff = r * cols;
      for (let t = 0; t < nTok; t++) out[t * outStride + outOffset + r] = dotDense(w, wOff, xs, t * cols, cols);
    }
    return;
  }
  const { q8, q8Scales } = scratch;
  const { qs, scales } = q8Arrays(m);
  for (let t = 0; t < nTok; t++) quantizeQ8(x, t * cols, cols, q8, t * cols, q8Scales, (t * cols) >> 5);
  for (let r = 0; r < rows; r++) {
    const wOff = r * cols;
    for (let t = 0; t < nTok; t++) out[t * outStride + outOffset + r] = dotQ8(qs, scales, wOff, q8, q8Scales, t * cols, cols);
  }
}
