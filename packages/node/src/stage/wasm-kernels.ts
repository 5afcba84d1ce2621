/**
 * The stage's WebAssembly SIMD kernels (hand-assembled with wasm-asm.ts). Every pointer is a byte offset into the
 * arena memory (wasm-matvec.ts); every function returns nothing and writes `out`.
 *
 * F16 weights stay F16 (2 bytes each: decode is bound by streaming weights). A half `h` becomes the float
 * `value(h) * 2^-112` with three integer ops: `(sext(h) << 13) & 0x8fffffff`, exact for every finite half. The
 * activation it multiplies is stored pre-scaled by 2^112 (exact: a power of two, and |x| <= 65504 keeps it finite),
 * so the product is `w * x` exactly, as in ggml (a product of two halves is exact in f32): no per-weight rescale.
 *
 * - matvecF32(w, x, out, rows, cols): out[r] = Σ w[r*cols + i] * x[i]; cols % 16 == 0.
 * - matvecF16(w, x, out, rows, cols, stride): out[r] = Σ half(w + r*stride)[i] * x[i] with x pre-scaled by 2^112;
 *   cols % 8 == 0; 16 halves per step into four f32x4 accumulators, then 8 at a time.
 * - roundF16(src, dst, n, scale): dst[i] = roundToF16(src[i]) * scale (round-to-nearest-even, subnormal halves,
 *   overflow to infinity and NaN as ggml's GGML_FP32_TO_FP16); n % 4 == 0; dst may equal src.
 * - weightedSumF16(v, p, out, cells, width, stride): out[d] = Σ_j p[j] * half(v + j*stride)[d], j in order (the
 *   attention's probabilities times V), p pre-scaled by 2^112; width % 8 == 0.
 * - matvecQ8(wq, ws, xq, xs, out, rows, cols): Q8_0 weights (int8 quants `rows*cols`, one f32 scale per 32) dotted
 *   with a Q8_0 activation (int8 `cols`, f32 scale per 32): per block the integer sum in i32 lanes, converted and
 *   multiplied by d_w*d_x in f32 lanes, as ggml's AVX2 vec_dot_q8_0_q8_0; cols % 32 == 0.
 */
import { I, V, zeroV128, type Code, type FunctionDef } from "./wasm-asm.js";

const i32 = 0x7f;
const f32 = 0x7d;
const v128 = 0x7b;

/** 2^112 as an f32: the pre-scale of activations that meet F16 weights. */
export const F16_INPUT_SCALE = 2 ** 112;

/** Adds `a..d` into the first, then sums its four lanes to one f32 on the stack: (l0 + l1) + (l2 + l3). */
function hsum(acc: number[]): Code {
  const [a, b, c, d] = acc;
  return [
    ...I.get(a), ...I.get(b), ...V.f32x4Add, ...I.get(c), ...I.get(d), ...V.f32x4Add, ...V.f32x4Add, ...I.tee(a),
    ...V.f32x4ExtractLane(0), ...I.get(a), ...V.f32x4ExtractLane(1), ...I.f32Add,
    ...I.get(a), ...V.f32x4ExtractLane(2), ...I.get(a), ...V.f32x4ExtractLane(3), ...I.f32Add, ...I.f32Add,
  ];
}

/** `for (r = 0; r < rows; r++) { body }` with r in local `r`; `body` may use br depths relative to inside the loop. */
function rowLoop(r: number, rows: number, body: Code): Code {
  return [
    ...I.block, ...I.loop,
    ...I.get(r), ...I.get(rows), ...I.geU, ...I.brIf(1),
    ...body,
    ...I.get(r), ...I.i32(1), ...I.add, ...I.set(r), ...I.br(0),
    ...I.end, ...I.end,
  ];
}

/** `while (p < end) { body; p += step }` */
function stepLoop(p: number, end: number, step: number, body: Code): Code {
  return [
    ...I.block, ...I.loop,
    ...I.get(p), ...I.get(end), ...I.geU, ...I.brIf(1),
    ...body,
    ...I.get(p), ...I.i32(step), ...I.add, ...I.set(p), ...I.br(0),
    ...I.end, ...I.end,
  ];
}

function matvecF32(): FunctionDef {
  const [w, x, out, rows, cols, r, wp, xp, xend] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const acc = [9, 10, 11, 12];
  const step: Code = [];
  for (let k = 0; k < 4; k++) {
    step.push(...I.get(acc[k]), ...I.get(wp), ...V.load(k * 16), ...I.get(xp), ...V.load(k * 16), ...V.f32x4Mul, ...V.f32x4Add, ...I.set(acc[k]));
  }
  step.push(...I.get(wp), ...I.i32(64), ...I.add, ...I.set(wp));
  const row: Code = [
    ...acc.flatMap((a) => [...zeroV128, ...I.set(a)]),
    ...I.get(x), ...I.set(xp),
    ...stepLoop(xp, xend, 64, step),
    ...I.get(out), ...I.get(r), ...I.i32(2), ...I.shl, ...I.add, ...hsum(acc), ...I.f32Store(),
  ];
  return {
    name: "matvecF32",
    params: [i32, i32, i32, i32, i32],
    locals: [[4, i32], [4, v128]],
    body: [...I.get(w), ...I.set(wp), ...I.get(x), ...I.get(cols), ...I.i32(2), ...I.shl, ...I.add, ...I.set(xend), ...rowLoop(r, rows, row)],
  };
}

function matvecF16(): FunctionDef {
  const [w, x, out, rows, cols, stride, r, wp, xp, xend, xend16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const acc = [11, 12, 13, 14];
  const mask = 15;
  // acc += float(halves at wp+wOff) * x at xp+xOff, four halves.
  const quad = (a: number, wOff: number, xOff: number): Code => [
    ...I.get(a), ...I.get(wp), ...V.load16x4S(wOff), ...I.i32(13), ...V.i32x4Shl, ...I.get(mask), ...V.and,
    ...I.get(xp), ...V.load(xOff), ...V.f32x4Mul, ...V.f32x4Add, ...I.set(a),
  ];
  // 16 halves per step, one quad per accumulator: measured 5-7 % faster than 32 (TurboFan hoists every load of the
  // step to its top, and 16 of them spill).
  const step16: Code = [];
  for (let k = 0; k < 4; k++) step16.push(...quad(acc[k], k * 8, k * 16));
  step16.push(...I.get(wp), ...I.i32(32), ...I.add, ...I.set(wp));
  const step8: Code = [...quad(acc[0], 0, 0), ...quad(acc[1], 8, 16), ...I.get(wp), ...I.i32(16), ...I.add, ...I.set(wp)];
  const row: Code = [
    ...acc.flatMap((a) => [...zeroV128, ...I.set(a)]),
    ...I.get(w), ...I.get(r), ...I.get(stride), ...I.mul, ...I.add, ...I.set(wp),
    ...I.get(x), ...I.set(xp),
    ...stepLoop(xp, xend16, 64, step16),
    ...stepLoop(xp, xend, 32, step8),
    ...I.get(out), ...I.get(r), ...I.i32(2), ...I.shl, ...I.add, ...hsum(acc), ...I.f32Store(),
  ];
  return {
    name: "matvecF16",
    params: [i32, i32, i32, i32, i32, i32],
    locals: [[5, i32], [5, v128]],
    body: [
      ...V.i32x4Const(0x8fffffff | 0), ...I.set(mask),
      ...I.get(x), ...I.get(cols), ...I.i32(2), ...I.shl, ...I.add, ...I.set(xend),
      ...I.get(x), ...I.get(cols), ...I.i32(~15), 0x71 /* i32.and */, ...I.i32(2), ...I.shl, ...I.add, ...I.set(xend16),
      ...rowLoop(r, rows, row),
    ],
  };
}

function roundF16(): FunctionDef {
  const [src, dst, n, scale, i, end] = [0, 1, 2, 3, 4, 5];
  const [xv, ax, rn, sc] = [6, 7, 8, 9];
  const f32x4 = (v: number): Code => [...I.f32(v), ...V.f32x4Splat];
  const step: Code = [
    ...I.get(src), ...I.get(i), ...I.add, ...V.load(), ...I.tee(xv), ...V.f32x4Abs, ...I.set(ax),
    // Normal halves: round the f32 mantissa to 10 bits, ties to even, on the bits (a carry bumps the exponent).
    ...I.get(xv), ...I.get(xv), ...I.i32(13), ...V.i32x4ShrU, ...V.i32x4Const(1), ...V.and, ...V.i32x4Add,
    ...V.i32x4Const(0x0fff), ...V.i32x4Add, ...V.i32x4Const(0xffffe000 | 0), ...V.and, ...I.set(rn),
    // Subnormal halves (|x| < 2^-14): adding 0.5 rounds to a multiple of 2^-24 (the f32 ulp there), ties to even.
    ...I.get(ax), ...f32x4(0.5), ...V.f32x4Add, ...f32x4(0.5), ...V.f32x4Sub,
    ...I.get(xv), ...V.i32x4Const(0x80000000 | 0), ...V.and, ...V.or,
    ...I.get(rn), ...I.get(ax), ...f32x4(2 ** -14), ...V.f32x4Lt, ...V.bitselect, ...I.set(rn),
    // |x| >= 65520 rounds past the largest half (65504): infinity with x's sign.
    ...I.get(xv), ...V.i32x4Const(0x80000000 | 0), ...V.and, ...V.i32x4Const(0x7f800000), ...V.or,
    ...I.get(rn), ...I.get(ax), ...f32x4(65520), ...V.f32x4Ge, ...V.bitselect, ...I.set(rn),
    // NaN stays NaN.
    ...I.get(xv), ...I.get(rn), ...I.get(xv), ...I.get(xv), ...V.f32x4Ne, ...V.bitselect,
    ...I.get(sc), ...V.f32x4Mul, ...I.set(rn),
    ...I.get(dst), ...I.get(i), ...I.add, ...I.get(rn), ...V.store(),
  ];
  return {
    name: "roundF16",
    params: [i32, i32, i32, f32],
    locals: [[2, i32], [4, v128]],
    body: [...I.get(scale), ...V.f32x4Splat, ...I.set(sc), ...I.get(n), ...I.i32(2), ...I.shl, ...I.set(end), ...stepLoop(i, end, 16, step)],
  };
}

function weightedSumF16(): FunctionDef {
  const [v, p, out, cells, width, stride, d, j, vp, pp, pend] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [a0, a1, pj, mask] = [11, 12, 13, 14];
  const conv = (off: number): Code => [...I.get(vp), ...V.load16x4S(off), ...I.i32(13), ...V.i32x4Shl, ...I.get(mask), ...V.and];
  const cell: Code = [
    ...I.get(pp), ...V.load32Splat(), ...I.set(pj),
    ...I.get(a0), ...conv(0), ...I.get(pj), ...V.f32x4Mul, ...V.f32x4Add, ...I.set(a0),
    ...I.get(a1), ...conv(8), ...I.get(pj), ...V.f32x4Mul, ...V.f32x4Add, ...I.set(a1),
    ...I.get(vp), ...I.get(stride), ...I.add, ...I.set(vp),
  ];
  // One chunk of 8 output columns: all cells in order, then store.
  const chunk: Code = [
    ...zeroV128, ...I.set(a0), ...zeroV128, ...I.set(a1),
    ...I.get(v), ...I.get(d), ...I.i32(1), ...I.shl, ...I.add, ...I.set(vp),
    ...I.get(p), ...I.set(pp),
    ...stepLoop(pp, pend, 4, cell),
    ...I.get(out), ...I.get(d), ...I.i32(2), ...I.shl, ...I.add, ...I.get(a0), ...V.store(0),
    ...I.get(out), ...I.get(d), ...I.i32(2), ...I.shl, ...I.add, ...I.get(a1), ...V.store(16),
  ];
  return {
    name: "weightedSumF16",
    params: [i32, i32, i32, i32, i32, i32],
    locals: [[5, i32], [4, v128]],
    body: [
      ...V.i32x4Const(0x8fffffff | 0), ...I.set(mask),
      ...I.get(p), ...I.get(cells), ...I.i32(2), ...I.shl, ...I.add, ...I.set(pend),
      ...stepLoop(d, width, 8, chunk),
    ],
  };
}

function matvecQ8(): FunctionDef {
  const [wq, ws, xq, xs, out, rows, cols, r, wp, sp, xp, xsp, xend] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [acc, isum, wv, xv] = [13, 14, 15, 16];
  // isum += dot(i16(wv half), i16(xv half)) for both halves of a 16-byte pair.
  const pair = (off: number): Code => [
    ...I.get(wp), ...V.load(off), ...I.set(wv), ...I.get(xp), ...V.load(off), ...I.set(xv),
    ...I.get(isum),
    ...I.get(wv), ...V.i16x8ExtendLowI8x16S, ...I.get(xv), ...V.i16x8ExtendLowI8x16S, ...V.i32x4DotI16x8S, ...V.i32x4Add,
    ...I.get(wv), ...V.i16x8ExtendHighI8x16S, ...I.get(xv), ...V.i16x8ExtendHighI8x16S, ...V.i32x4DotI16x8S, ...V.i32x4Add,
    ...I.set(isum),
  ];
  const block: Code = [
    ...zeroV128, ...I.set(isum),
    ...pair(0), ...pair(16),
    ...I.get(acc), ...I.get(isum), ...V.f32x4ConvertI32x4S,
    ...I.get(sp), ...I.f32Load(), ...I.get(xsp), ...I.f32Load(), ...I.f32Mul, ...V.f32x4Splat, ...V.f32x4Mul, ...V.f32x4Add, ...I.set(acc),
    ...I.get(wp), ...I.i32(32), ...I.add, ...I.set(wp),
    ...I.get(sp), ...I.i32(4), ...I.add, ...I.set(sp),
    ...I.get(xsp), ...I.i32(4), ...I.add, ...I.set(xsp),
  ];
  const row: Code = [
    ...zeroV128, ...I.set(acc),
    ...I.get(xq), ...I.set(xp), ...I.get(xs), ...I.set(xsp),
    ...stepLoop(xp, xend, 32, block),
    ...I.get(out), ...I.get(r), ...I.i32(2), ...I.shl, ...I.add,
    ...I.get(acc), ...V.f32x4ExtractLane(0), ...I.get(acc), ...V.f32x4ExtractLane(1), ...I.f32Add,
    ...I.get(acc), ...V.f32x4ExtractLane(2), ...I.get(acc), ...V.f32x4ExtractLane(3), ...I.f32Add, ...I.f32Add,
    ...I.f32Store(),
  ];
  return {
    name: "matvecQ8",
    params: [i32, i32, i32, i32, i32, i32, i32],
    locals: [[6, i32], [4, v128]],
    body: [
      ...I.get(wq), ...I.set(wp), ...I.get(ws), ...I.set(sp),
      ...I.get(xq), ...I.get(cols), ...I.add, ...I.set(xend),
      ...rowLoop(r, rows, row),
    ],
  };
}

export const KERNELS: FunctionDef[] = [matvecF32(), matvecF16(), roundF16(), weightedSumF16(), matvecQ8()];
