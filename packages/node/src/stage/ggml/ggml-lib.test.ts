/**
 * The FFI binding against JS references: the libraries load from the installed platform package, the CPU variant
 * picked runs here, and a mat-vec over F16 and Q8_0 weights computed by ggml's CPU backend equals the same product
 * computed in JS with the activation converted as ggml converts it (F16 rounding; Q8_0 quantisation).
 */
import { describe, expect, it } from "vitest";
import { F16_TO_F32, f32ToF16Bits } from "../f16.js";
import { quantizeQ8 } from "../weights.js";
import { GGML, findGgmlDir, loadGgml } from "./ggml-lib.js";
import { ggmlMatVec } from "./ggml-self-check.js";

function mulberry(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ROWS = 48;
const COLS = 256;

function expectClose(got: Float32Array, want: Float64Array, rel: number): void {
  let max = 0;
  for (const v of want) max = Math.max(max, Math.abs(v));
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(rel * max);
}

describe("ggml FFI binding", () => {
  it("finds the libraries of the installed platform package and picks a CPU variant that runs here", () => {
    expect(findGgmlDir()).toBeDefined();
    const g = loadGgml();
    expect(g.cpuVariant).toMatch(/ggml-cpu/);
    expect(loadGgml()).toBe(g);
  });

  it("computes an F16 mat-vec equal to the JS product with the activation rounded to F16", () => {
    const g = loadGgml();
    const rnd = mulberry(1);
    const halves = new Uint16Array(ROWS * COLS);
    for (let i = 0; i < halves.length; i++) halves[i] = f32ToF16Bits(rnd() * 2 - 1);
    const x = Float32Array.from({ length: COLS }, () => rnd() * 4 - 2);
    const want = new Float64Array(ROWS);
    for (let r = 0; r < ROWS; r++) {
      for (let c = 0; c < COLS; c++) want[r] += F16_TO_F32[halves[r * COLS + c]] * F16_TO_F32[f32ToF16Bits(x[c])];
    }
    expectClose(ggmlMatVec(g, GGML.F16, ROWS, COLS, new Uint8Array(halves.buffer), x), want, 1e-6);
  });

  it("computes a Q8_0 mat-vec equal to the JS product with the activation quantised to Q8_0", () => {
    const g = loadGgml();
    const rnd = mulberry(2);
    const nb = (ROWS * COLS) / 32;
    const bytes = new Uint8Array(nb * 34);
    const qw = new Int8Array(ROWS * COLS);
    const dw = new Float32Array(nb);
    for (let b = 0; b < nb; b++) {
      const d = f32ToF16Bits(0.001 + rnd() * 0.01);
      dw[b] = F16_TO_F32[d];
      bytes[b * 34] = d & 0xff;
      bytes[b * 34 + 1] = d >> 8;
      for (let i = 0; i < 32; i++) {
        const q = Math.floor(rnd() * 255) - 127;
        qw[b * 32 + i] = q;
        bytes[b * 34 + 2 + i] = q & 0xff;
      }
    }
    const x = Float32Array.from({ length: COLS }, () => rnd() * 4 - 2);
    const qx = new Int8Array(COLS);
    const dx = new Float32Array(COLS / 32);
    quantizeQ8(x, 0, COLS, qx, 0, dx, 0);
    const want = new Float64Array(ROWS);
    for (let r = 0; r < ROWS; r++) {
      for (let c = 0; c < COLS; c++) want[r] += dw[(r * COLS + c) >> 5] * dx[c >> 5] * qw[r * COLS + c] * qx[c];
    }
    expectClose(ggmlMatVec(g, GGML.Q8_0, ROWS, COLS, bytes, x), want, 1e-6);
  });
});
