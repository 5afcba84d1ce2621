/**
 * The WebAssembly kernels against plain JS references: F16 rounding bit-exact with f32ToF16Bits (ggml's
 * GGML_FP32_TO_FP16) on edge cases and random values; the dot-product kernels equal to sums of the same exact products
 * up to f32 summation order (relative 1e-6). BF16 rounding bit-exact with the testkit's writer (ggml's
 * ggml_compute_fp32_to_bf16), and the BF16 mat-vec equal to the sum of the exact products.
 */
import { describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { bfloat16BitsToFloat32, encodeTensor } from "@tessera/testkit";
import { F16_TO_F32, f32ToF16Bits } from "./f16.js";
import { wasmArena } from "./wasm-matvec.js";
import { F16_INPUT_SCALE, PREFETCH_BYTES } from "./wasm-kernels.js";
import { quantizeQ8, roundToBF16 } from "./weights.js";

const arena = wasmArena()!;

function mulberry(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function put(values: ArrayLike<number>): number {
  const ptr = arena.alloc(values.length);
  arena.heap.set(values, ptr >> 2);
  return ptr;
}

function halves(values: number[]): number {
  const ptr = arena.alloc(values.length, 2);
  const u16 = arena.heapU16;
  values.forEach((v, i) => (u16[(ptr >> 1) + i] = f32ToF16Bits(v)));
  return ptr;
}

function closeTo(actual: number, expected: number, scale: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-6 * scale);
}

describe("WebAssembly kernels", () => {
  it("roundF16 rounds exactly like ggml's FP32_TO_FP16 (ties to even, subnormals, overflow, NaN)", () => {
    const rnd = mulberry(1);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const edge = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e30, -Infinity, Infinity, NaN, 2 ** -14, 2 ** -15, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-30, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11)];
    const values: number[] = [...edge];
    while (values.length < 4096) {
      u32[0] = Math.floor(rnd() * 2 ** 32);
      values.push(f32[0]);
    }
    const src = put(values);
    const dst = arena.alloc(values.length);
    arena.roundF16(src, dst, values.length, 1);
    const scaled = arena.alloc(values.length);
    arena.roundF16(src, scaled, values.length, F16_INPUT_SCALE);
    const heap = arena.heap;
    for (let i = 0; i < values.length; i++) {
      const expected = F16_TO_F32[f32ToF16Bits(values[i])];
      if (Number.isNaN(expected)) {
        expect(heap[(dst >> 2) + i]).toBeNaN();
        continue;
      }
      expect(Object.is(heap[(dst >> 2) + i], expected), `value ${values[i]}: got ${heap[(dst >> 2) + i]}, expected ${expected}`).toBe(true);
      expect(heap[(scaled >> 2) + i]).toBe(Math.fround(expected * F16_INPUT_SCALE));
    }
  });

  it("matvecF16 equals the F16 products summed in JS, for strided rows and widths not a multiple of 32", () => {
    const rnd = mulberry(2);
    for (const [rows, cols, stride] of [[7, 72, 72], [5, 512, 512], [9, 16, 48]]) {
      const w = Array.from({ length: rows * stride }, () => rnd() * 2 - 1);
      const x = Array.from({ length: cols }, () => F16_TO_F32[f32ToF16Bits((rnd() * 2 - 1) * 8)]);
      const wp = halves(w);
      const xp = put(x.map((v) => v * F16_INPUT_SCALE));
      const out = arena.alloc(rows);
      arena.matvecF16(wp, xp, out, rows, cols, stride * 2);
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        let mag = 0;
        for (let i = 0; i < cols; i++) {
          const p = F16_TO_F32[f32ToF16Bits(w[r * stride + i])] * x[i];
          sum += p;
          mag += Math.abs(p);
        }
        closeTo(arena.heap[(out >> 2) + r], sum, mag);
      }
    }
  });

  it("roundBF16 rounds exactly like ggml's fp32_to_bf16 (ties to even, carry into the exponent, NaN)", () => {
    const rnd = mulberry(5);
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const values = [0, -0, 1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 3.4e38, -3.4e38, Infinity, -Infinity, NaN, 1e-40, -1e-45];
    for (let i = 0; i < 400; i++) {
      u32[0] = Math.floor(rnd() * 2 ** 32);
      if (!Number.isNaN(f32[0])) values.push(f32[0]);
    }
    while (values.length % 4 !== 0) values.push(0.5);
    const src = put(values);
    const dst = arena.alloc(values.length);
    arena.roundBF16(src, dst, values.length);
    for (let i = 0; i < values.length; i++) {
      const want = bfloat16BitsToFloat32(encodeTensor("BF16", Float32Array.of(values[i])).readUInt16LE(0));
      const got = arena.heap[(dst >> 2) + i];
      if (Number.isNaN(want)) {
        expect(got).toBeNaN();
        expect(roundToBF16(values[i])).toBeNaN();
        continue;
      }
      expect(Object.is(got, want), `value ${values[i]}: got ${got}, expected ${want}`).toBe(true);
      expect(Object.is(roundToBF16(values[i]), want), `JS rounding of ${values[i]}`).toBe(true);
    }
  });

  it("matvecBF16 equals the BF16 products summed in JS, for strided rows and widths not a multiple of 32", () => {
    const rnd = mulberry(6);
    for (const [rows, cols, stride] of [[7, 72, 72], [5, 512, 512], [9, 16, 48]]) {
      const w = Array.from({ length: rows * stride }, () => rnd() * 2 - 1);
      const x = Array.from({ length: cols }, () => roundToBF16((rnd() * 2 - 1) * 8));
      const bytes = encodeTensor("BF16", Float32Array.from(w));
      const wp = arena.alloc(rows * stride, 2);
      new Uint8Array(arena.memory.buffer, wp, bytes.length).set(bytes);
      const xp = put(x);
      const out = arena.alloc(rows);
      arena.matvecBF16(wp, xp, out, rows, cols, stride * 2);
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        let mag = 0;
        for (let i = 0; i < cols; i++) {
          const p = bfloat16BitsToFloat32(bytes.readUInt16LE(2 * (r * stride + i))) * x[i];
          sum += p;
          mag += Math.abs(p);
        }
        closeTo(arena.heap[(out >> 2) + r], sum, mag);
      }
    }
  });

  it("weightedSumF16 adds p[j] * V[j] over the cells, per column", () => {
    const rnd = mulberry(3);
    const cells = 11;
    const width = 24;
    const stride = 40;
    const v = Array.from({ length: cells * stride }, () => rnd() * 2 - 1);
    const p = Array.from({ length: cells }, () => F16_TO_F32[f32ToF16Bits(rnd())]);
    const vp = halves(v);
    const pp = put(p.map((x) => x * F16_INPUT_SCALE));
    const out = arena.alloc(width);
    arena.weightedSumF16(vp, pp, out, cells, width, stride * 2);
    for (let d = 0; d < width; d++) {
      let sum = 0;
      for (let j = 0; j < cells; j++) sum = Math.fround(sum + p[j] * F16_TO_F32[f32ToF16Bits(v[j * stride + d])]);
      expect(arena.heap[(out >> 2) + d]).toBe(sum);
    }
  });

  it("matvecQ8 equals Σ_blocks d_w*d_x * Σ q_w*q_x", () => {
    const rnd = mulberry(4);
    const rows = 6;
    const cols = 96;
    const wq = Int8Array.from({ length: rows * cols }, () => Math.round(rnd() * 254 - 127));
    const ws = Float32Array.from({ length: (rows * cols) / 32 }, () => F16_TO_F32[f32ToF16Bits(rnd() * 0.01)]);
    const x = Float32Array.from({ length: cols }, () => rnd() * 4 - 2);
    const xq = new Int8Array(cols);
    const xs = new Float32Array(cols / 32);
    quantizeQ8(x, 0, cols, xq, 0, xs, 0);
    const wqp = arena.alloc(rows * cols, 1);
    arena.heapI8.set(wq, wqp);
    const wsp = put(ws);
    const xqp = arena.alloc(cols, 1);
    arena.heapI8.set(xq, xqp);
    const xsp = put(xs);
    const out = arena.alloc(rows);
    arena.matvecQ8(wqp, wsp, xqp, xsp, out, rows, cols);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      let mag = 0;
      for (let b = 0; b < cols / 32; b++) {
        let isum = 0;
        for (let i = 0; i < 32; i++) isum += wq[r * cols + b * 32 + i] * xq[b * 32 + i];
        const d = Math.fround(ws[(r * cols) / 32 + b] * xs[b]);
        sum += d * isum;
        mag += Math.abs(d * isum);
      }
      closeTo(arena.heap[(out >> 2) + r], sum, mag);
    }
  });

  it("refuses weights past the 4 GiB WebAssembly memory with no_capacity, without growing it", () => {
    const before = arena.memory.buffer.byteLength;
    let err: unknown;
    try {
      arena.alloc(2 ** 30 + 1, 4);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe("no_capacity");
    expect(arena.memory.buffer.byteLength).toBe(before);
  });

  it("keeps PREFETCH_BYTES mapped past the top, so the F16 kernel's look-ahead never traps on the last matrix", () => {
    const rows = 3;
    const cols = 64;
    const w = halves(Array.from({ length: rows * cols }, (_, i) => (i % 7) - 3));
    expect(arena.memory.buffer.byteLength).toBeGreaterThanOrEqual(w + rows * cols * 2 + PREFETCH_BYTES);
    const x = put(new Float32Array(cols).fill(F16_INPUT_SCALE));
    const out = arena.alloc(rows);
    arena.matvecF16(w, x, out, rows, cols, cols * 2);
    const expected = Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, i) => ((r * cols + i) % 7) - 3).reduce((a, b) => a + b, 0));
    expect(Array.from(arena.heap.subarray(out >> 2, (out >> 2) + rows))).toEqual(expected);
  });
});
