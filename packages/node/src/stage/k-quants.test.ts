/**
 * K-quants (Q4_K, Q6_K) and the Q8_K activation: the quantiser against ggml's rules, and the SIMD kernels against a
 * double-precision sum of the dequantised weights times the dequantised activation (relative 1e-6: only the f32
 * summation order differs). Agreement with llama.cpp itself is in stage-vs-llamacpp.test.ts.
 */
import { describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { encodeTensor, SeededRandom } from "@tessera/testkit";
import { GGML_TYPE, type GgufTensorInfo } from "./gguf-reader.js";
import { kQuantRow, loadKQuant, q8kDOffset, q8kRowBytes, q8kSumsOffset, quantizeQ8K, QK_K } from "./k-quants.js";
import { wasmArena } from "./wasm-matvec.js";
import { residentBytes } from "./weights.js";

const arena = wasmArena()!;

function tensor(type: "Q4_K" | "Q6_K", rows: number, cols: number, seed: number): { buf: Buffer; info: GgufTensorInfo } {
  const values = new SeededRandom(seed).normals(rows * cols, 0.05);
  const buf = encodeTensor(type, values);
  const info = { name: `w.${type}`, dims: [cols, rows], type: GGML_TYPE[type], fileOffset: 0, byteLength: buf.length, elementCount: rows * cols };
  return { buf, info };
}

/** Quantises one row into fresh arena memory; returns its base offset. */
function q8k(x: Float32Array): number {
  const base = arena.alloc(q8kRowBytes(x.length), 1);
  quantizeQ8K(arena, x, 1, x.length, base);
  return base;
}

describe("Q8_K activation quantisation", () => {
  it("scales by the signed value of largest magnitude, rounds ties to even, and sums each 32", () => {
    const x = new Float32Array(2 * QK_K);
    x[0] = -127 / 64; // the largest magnitude, kept signed: iscale = -127 / x[0] = 64, d = 1/64, quant = round(64 x)
    x[1] = 1 / 128; // 0.5 → 0 (tie to even)
    x[2] = 3 / 128; // 1.5 → 2
    x[3] = 5 / 128; // 2.5 → 2
    x[4] = 1; // 64
    x[40] = 7 / 128; // 3.5 → 4, in the second sum of 32
    // second block all zero: d = 0, quants 0
    const base = q8k(x);
    const q = arena.heapI8.subarray(base, base + 2 * QK_K);
    const d = arena.heap.subarray((base + q8kDOffset(x.length)) >> 2, ((base + q8kDOffset(x.length)) >> 2) + 2);
    const sums = arena.heapI16.subarray((base + q8kSumsOffset(x.length)) >> 1, ((base + q8kSumsOffset(x.length)) >> 1) + 16);
    expect(d[0]).toBe(1 / 64);
    expect(Array.from(q.subarray(0, 5))).toEqual([-127, 0, 2, 2, 64]);
    expect(q[40]).toBe(4);
    expect(sums[0]).toBe(-127 + 2 + 2 + 64);
    expect(sums[1]).toBe(4);
    expect(d[1]).toBe(0);
    expect(Array.from(q.subarray(QK_K)).every((v) => v === 0)).toBe(true);
    expect(Array.from(sums.subarray(8)).every((v) => v === 0)).toBe(true);
  });
});

describe.each(["Q4_K", "Q6_K"] as const)("%s weights", (type) => {
  it("the SIMD matvec equals Σ dequantised weight × dequantised activation", () => {
    const rows = 7;
    const cols = 3 * QK_K;
    const { buf, info } = tensor(type, rows, cols, 3);
    const m = loadKQuant(buf, info);
    expect(m.kind).toBe(type === "Q4_K" ? "q4_k" : "q6_k");
    const x = new SeededRandom(4).normals(cols, 1);
    const base = q8k(x);
    const out = arena.alloc(rows);
    const kernel = type === "Q4_K" ? arena.matvecQ4K : arena.matvecQ6K;
    kernel(m.quants, m.scales, m.d, base, base + q8kDOffset(cols), base + q8kSumsOffset(cols), out, rows, cols);
    const xd = new Float64Array(cols);
    for (let i = 0; i < cols; i++) xd[i] = arena.heapI8[base + i] * arena.heap[((base + q8kDOffset(cols)) >> 2) + Math.floor(i / QK_K)];
    const w = new Float32Array(cols);
    for (let r = 0; r < rows; r++) {
      kQuantRow(m, r, w, 0);
      let sum = 0;
      let scale = 0;
      for (let i = 0; i < cols; i++) {
        sum += w[i] * xd[i];
        scale += Math.abs(w[i] * xd[i]);
      }
      expect(scale).toBeGreaterThan(0);
      expect(Math.abs(arena.heap[(out >> 2) + r] - sum)).toBeLessThanOrEqual(1e-6 * scale);
    }
  });

  it("dequantises rows close to the values it was made from", () => {
    const { buf, info } = tensor(type, 2, QK_K, 5);
    const values = new SeededRandom(5).normals(2 * QK_K, 0.05);
    const m = loadKQuant(buf, info);
    const row = new Float32Array(QK_K);
    kQuantRow(m, 1, row, 0);
    const rms = Math.sqrt(row.reduce((a, v, i) => a + (v - values[QK_K + i]) ** 2, 0) / QK_K);
    expect(rms).toBeLessThan(type === "Q4_K" ? 0.01 : 0.002); // of values with standard deviation 0.05
  });

  it("takes the resident bytes placement is told about", () => {
    const { buf, info } = tensor(type, 5, 2 * QK_K, 7);
    const before = arena.alloc(0, 1);
    loadKQuant(buf, info);
    const used = arena.alloc(0, 1) - before;
    expect(residentBytes(info)).toBeLessThanOrEqual(used);
    expect(used - residentBytes(info)).toBeLessThan(3 * 64); // alignment of the three parts
    expect(residentBytes(info)).toBe(type === "Q4_K" ? info.byteLength + 10 * 8 : info.byteLength + 10 * (276 - 210));
  });

  it("refuses a row length that is not a multiple of 256 with bad_request", () => {
    const { buf, info } = tensor(type, 2, QK_K, 6);
    const bad = { ...info, dims: [128, 4] };
    expect(() => loadKQuant(buf, bad)).toThrow(TesseraError);
    expect(() => loadKQuant(buf, bad)).toThrow(/multiple of 256/);
  });
});
