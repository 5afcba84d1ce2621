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
 * - matvecBF16(w, x, out, rows, cols, stride): the same over BF16 weights (`h << 16` is the weight as an f32) and an
 *   activation rounded to BF16, not scaled: every product is exact in f32, as in ggml's vec_dot_bf16.
 * - roundBF16(src, dst, n): dst[i] = roundToBF16(src[i]) (nearest even, ggml_compute_fp32_to_bf16); n % 4 == 0.
 * - roundF16(src, dst, n, scale): dst[i] = roundToF16(src[i]) * scale (round-to-nearest-even, subnormal halves,
 *   overflow to infinity and NaN as ggml's GGML_FP32_TO_FP16); n % 4 == 0; dst may equal src.
 * - weightedSumF16(v, p, out, cells, width, stride): out[d] = Σ_j p[j] * half(v + j*stride)[d], j in order (the
 *   attention's probabilities times V), p pre-scaled by 2^112; width % 8 == 0.
 * - matvecQ8(wq, ws, xq, xs, out, rows, cols): Q8_0 weights (int8 quants `rows*cols`, one f32 scale per 32) dotted
 *   with a Q8_0 activation (int8 `cols`, f32 scale per 32): per block the integer sum in i32 lanes, converted and
 *   multiplied by d_w*d_x in f32 lanes, as ggml's AVX2 vec_dot_q8_0_q8_0; cols % 32 == 0.
 * - matvecQ4K(wq, wScales, wd, xq, xd, xSums, out, rows, cols): Q4_K weights (k-quants.ts layout) dotted with a
 *   Q8_K activation, as ggml's vec_dot_q4_K_q8_K: per sub-block of 32 the integer sum of nibble × quant times the
 *   sub-block's 6-bit scale, summed per super-block in i32 lanes, times d_w*d_x in f32 lanes; minus dmin_w*d_x times
 *   Σ mins × the activation's quant sums of 32; cols % 256 == 0.
 * - matvecQ6K(same): Q6_K weights (int8 `q - 32`, int8 scale per 16) with a Q8_K activation, as vec_dot_q6_K_q8_K;
 *   xSums is unused; cols % 256 == 0.
 */
import { I, V, zeroV128, type Code, type FunctionDef } from "./wasm-asm.js";

const i32 = 0x7f;
const f32 = 0x7d;
const v128 = 0x7b;

/**
 * How far ahead of the weights being read the kernels touch memory. A scalar load of one byte PREFETCH_BYTES ahead,
 * its value dropped, acts as a software prefetch (WebAssembly has none): the cache miss starts while the SIMD work on
 * the current lines goes on, so more lines are in flight than the out-of-order window alone would allow. Measured on a
 * 128 MB F16 matrix streamed from DRAM (one thread, CPU time, three alternating runs each): 4.6-5.5 GB/s without,
 * 6.0-6.1 at 2 KiB, 6.1-6.4 at 8 KiB, 6.0-6.9 at 16 KiB. Only the F16 kernel does it: the K-quant kernels spend more
 * instructions per byte, and there the same touch measured 4-7 % slower (Q4_K) and 10-40 % slower (Q6_K). The arena
 * keeps this many bytes mapped past its top, so the touch never leaves the memory.
 */
export const PREFETCH_BYTES = 8192;

/** Touches the byte PREFETCH_BYTES past `ptr` (see above). */
function prefetch(ptr: number): Code {
  return [...I.get(ptr), ...I.i32Load8U(PREFETCH_BYTES), ...I.drop];
}

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

/**
 * A mat-vec over 16-bit weights, `convert` turning the four halves loaded sign-extended into i32 lanes into f32 bits:
 * F16 (`(h << 13) & mask`, the activation pre-scaled by 2^112) or BF16 (`h << 16`, the sign extension shifted out).
 */
function matvecHalf(name: string, convert: (mask: number) => Code): FunctionDef {
  const [w, x, out, rows, cols, stride, r, wp, xp, xend, xend16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const acc = [11, 12, 13, 14];
  const mask = 15;
  // acc += float(halves at wp+wOff) * x at xp+xOff, four halves.
  const quad = (a: number, wOff: number, xOff: number): Code => [
    ...I.get(a), ...I.get(wp), ...V.load16x4S(wOff), ...convert(mask),
    ...I.get(xp), ...V.load(xOff), ...V.f32x4Mul, ...V.f32x4Add, ...I.set(a),
  ];
  // 16 halves per step, one quad per accumulator: measured 5-7 % faster than 32 (TurboFan hoists every load of the
  // step to its top, and 16 of them spill).
  const step16: Code = [];
  for (let k = 0; k < 4; k++) step16.push(...quad(acc[k], k * 8, k * 16));
  step16.push(...prefetch(wp), ...I.get(wp), ...I.i32(32), ...I.add, ...I.set(wp));
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
    name,
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

function matvecF16(): FunctionDef {
  return matvecHalf("matvecF16", (mask) => [...I.i32(13), ...V.i32x4Shl, ...I.get(mask), ...V.and]);
}

/** BF16 is the top half of an f32: the weight is exact in f32, and so is its product with a BF16-rounded activation. */
function matvecBF16(): FunctionDef {
  return matvecHalf("matvecBF16", () => [...I.i32(16), ...V.i32x4Shl]);
}

/**
 * dst[i] = src[i] rounded to BF16 (as an f32 whose low 16 bits are zero): add 0x7fff plus the kept part's lowest bit
 * to the bits and clear the low half, ggml's `ggml_compute_fp32_to_bf16` (a carry bumps the exponent, the largest
 * values round to infinity); NaN stays NaN. n % 4 == 0; dst may equal src.
 */
function roundBF16(): FunctionDef {
  const [src, dst, n, i, end] = [0, 1, 2, 3, 4];
  const [xv, rn] = [5, 6];
  const step: Code = [
    ...I.get(src), ...I.get(i), ...I.add, ...V.load(), ...I.set(xv),
    ...I.get(xv), ...I.get(xv), ...I.i32(16), ...V.i32x4ShrU, ...V.i32x4Const(1), ...V.and, ...V.i32x4Add,
    ...V.i32x4Const(0x7fff), ...V.i32x4Add, ...V.i32x4Const(0xffff0000 | 0), ...V.and, ...I.set(rn),
    ...I.get(dst), ...I.get(i), ...I.add,
    ...I.get(xv), ...I.get(rn), ...I.get(xv), ...I.get(xv), ...V.f32x4Ne, ...V.bitselect, ...V.store(),
  ];
  return {
    name: "roundBF16",
    params: [i32, i32, i32],
    locals: [[2, i32], [2, v128]],
    body: [...I.get(n), ...I.i32(2), ...I.shl, ...I.set(end), ...stepLoop(i, end, 16, step)],
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

/** out[r] = Σ lanes of `acc` minus Σ lanes of `sub` (when given), stored as f32 at out + 4r. */
function storeRowSum(out: number, r: number, acc: number, sub?: number): Code {
  const lanes = (v: number): Code => [
    ...I.get(v), ...V.f32x4ExtractLane(0), ...I.get(v), ...V.f32x4ExtractLane(1), ...I.f32Add,
    ...I.get(v), ...V.f32x4ExtractLane(2), ...I.get(v), ...V.f32x4ExtractLane(3), ...I.f32Add, ...I.f32Add,
  ];
  return [...I.get(out), ...I.get(r), ...I.i32(2), ...I.shl, ...I.add, ...lanes(acc), ...(sub === undefined ? [] : [...lanes(sub), ...I.f32Sub]), ...I.f32Store()];
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
    ...storeRowSum(out, r, acc),
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

/** `sum += dot(i16(a), i16(x))` over all 16 bytes: `a` extended as unsigned or signed, `x` (int8 quants) signed. */
function dotBytes(sum: number, a: number, x: number, unsignedA: boolean): Code {
  const [low, high] = unsignedA ? [V.i16x8ExtendLowI8x16U, V.i16x8ExtendHighI8x16U] : [V.i16x8ExtendLowI8x16S, V.i16x8ExtendHighI8x16S];
  return [
    ...I.get(sum),
    ...I.get(a), ...low, ...I.get(x), ...V.i16x8ExtendLowI8x16S, ...V.i32x4DotI16x8S, ...V.i32x4Add,
    ...I.get(a), ...high, ...I.get(x), ...V.i16x8ExtendHighI8x16S, ...V.i32x4DotI16x8S, ...V.i32x4Add,
    ...I.set(sum),
  ];
}

function matvecQ4K(): FunctionDef {
  const [wq, wsc, wd, xq, xd, xsum, out, rows, cols] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [r, wp, sp, dp, xp, xdp, xsp, xend] = [9, 10, 11, 12, 13, 14, 15, 16];
  const [acc, accm, isum, lo, hi, qv, nib, xv, mask] = [17, 18, 19, 20, 21, 22, 23, 24, 25];
  const block: Code = [...zeroV128, ...I.set(isum)];
  // Four chunks of 64 values: 32 bytes whose low nibbles are sub-block 2c and high nibbles sub-block 2c+1.
  for (let c = 0; c < 4; c++) {
    block.push(...zeroV128, ...I.set(lo), ...zeroV128, ...I.set(hi));
    for (let h = 0; h < 2; h++) {
      block.push(
        ...I.get(wp), ...V.load(32 * c + 16 * h), ...I.set(qv),
        ...I.get(qv), ...I.get(mask), ...V.and, ...I.set(nib),
        ...I.get(xp), ...V.load(64 * c + 16 * h), ...I.set(xv),
        ...dotBytes(lo, nib, xv, true),
        ...I.get(qv), ...I.i32(4), ...V.i8x16ShrU, ...I.set(nib),
        ...I.get(xp), ...V.load(64 * c + 32 + 16 * h), ...I.set(xv),
        ...dotBytes(hi, nib, xv, true),
      );
    }
    block.push(
      ...I.get(isum),
      ...I.get(lo), ...I.get(sp), ...I.i32Load8U(2 * c), ...V.i32x4Splat, ...V.i32x4Mul, ...V.i32x4Add,
      ...I.get(hi), ...I.get(sp), ...I.i32Load8U(2 * c + 1), ...V.i32x4Splat, ...V.i32x4Mul, ...V.i32x4Add,
      ...I.set(isum),
    );
  }
  block.push(
    ...I.get(acc), ...I.get(isum), ...V.f32x4ConvertI32x4S,
    ...I.get(dp), ...I.f32Load(), ...I.get(xdp), ...I.f32Load(), ...I.f32Mul, ...V.f32x4Splat, ...V.f32x4Mul, ...V.f32x4Add, ...I.set(acc),
    // The mins: eight 6-bit mins (as i16) times the eight quant sums of 32.
    ...I.get(accm), ...I.get(sp), ...V.load8x8U(8), ...I.get(xsp), ...V.load(), ...V.i32x4DotI16x8S, ...V.f32x4ConvertI32x4S,
    ...I.get(dp), ...I.f32Load(4), ...I.get(xdp), ...I.f32Load(), ...I.f32Mul, ...V.f32x4Splat, ...V.f32x4Mul, ...V.f32x4Add, ...I.set(accm),
    ...I.get(wp), ...I.i32(128), ...I.add, ...I.set(wp),
    ...I.get(sp), ...I.i32(16), ...I.add, ...I.set(sp),
    ...I.get(dp), ...I.i32(8), ...I.add, ...I.set(dp),
    ...I.get(xdp), ...I.i32(4), ...I.add, ...I.set(xdp),
    ...I.get(xsp), ...I.i32(16), ...I.add, ...I.set(xsp),
  );
  const row: Code = [
    ...zeroV128, ...I.set(acc), ...zeroV128, ...I.set(accm),
    ...I.get(xq), ...I.set(xp), ...I.get(xd), ...I.set(xdp), ...I.get(xsum), ...I.set(xsp),
    ...stepLoop(xp, xend, 256, block),
    ...storeRowSum(out, r, acc, accm),
  ];
  return {
    name: "matvecQ4K",
    params: [i32, i32, i32, i32, i32, i32, i32, i32, i32],
    locals: [[8, i32], [9, v128]],
    body: [
      ...V.i32x4Const(0x0f0f0f0f), ...I.set(mask),
      ...I.get(wq), ...I.set(wp), ...I.get(wsc), ...I.set(sp), ...I.get(wd), ...I.set(dp),
      ...I.get(xq), ...I.get(cols), ...I.add, ...I.set(xend),
      ...rowLoop(r, rows, row),
    ],
  };
}

function matvecQ6K(): FunctionDef {
  const [wq, wsc, wd, xq, xd, , out, rows, cols] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [r, wp, sp, dp, xp, xdp, xend] = [9, 10, 11, 12, 13, 14, 15];
  const [acc, isum, part, wv, xv] = [16, 17, 18, 19, 20];
  const block: Code = [...zeroV128, ...I.set(isum)];
  // Sixteen groups of 16 values, each with its own int8 scale.
  for (let g = 0; g < 16; g++) {
    block.push(
      ...I.get(wp), ...V.load(16 * g), ...I.set(wv), ...I.get(xp), ...V.load(16 * g), ...I.set(xv),
      ...zeroV128, ...I.set(part),
      ...dotBytes(part, wv, xv, false),
      ...I.get(isum), ...I.get(part), ...I.get(sp), ...I.i32Load8S(g), ...V.i32x4Splat, ...V.i32x4Mul, ...V.i32x4Add, ...I.set(isum),
    );
  }
  block.push(
    ...I.get(acc), ...I.get(isum), ...V.f32x4ConvertI32x4S,
    ...I.get(dp), ...I.f32Load(), ...I.get(xdp), ...I.f32Load(), ...I.f32Mul, ...V.f32x4Splat, ...V.f32x4Mul, ...V.f32x4Add, ...I.set(acc),
    ...I.get(wp), ...I.i32(256), ...I.add, ...I.set(wp),
    ...I.get(sp), ...I.i32(16), ...I.add, ...I.set(sp),
    ...I.get(dp), ...I.i32(4), ...I.add, ...I.set(dp),
    ...I.get(xdp), ...I.i32(4), ...I.add, ...I.set(xdp),
  );
  const row: Code = [
    ...zeroV128, ...I.set(acc),
    ...I.get(xq), ...I.set(xp), ...I.get(xd), ...I.set(xdp),
    ...stepLoop(xp, xend, 256, block),
    ...storeRowSum(out, r, acc),
  ];
  return {
    name: "matvecQ6K",
    params: [i32, i32, i32, i32, i32, i32, i32, i32, i32],
    locals: [[7, i32], [5, v128]],
    body: [
      ...I.get(wq), ...I.set(wp), ...I.get(wsc), ...I.set(sp), ...I.get(wd), ...I.set(dp),
      ...I.get(xq), ...I.get(cols), ...I.add, ...I.set(xend),
      ...rowLoop(r, rows, row),
    ],
  };
}

export const KERNELS: FunctionDef[] = [matvecF32(), matvecF16(), matvecBF16(), roundF16(), roundBF16(), weightedSumF16(), matvecQ8(), matvecQ4K(), matvecQ6K()];
