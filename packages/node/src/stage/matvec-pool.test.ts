/**
 * Matrix-vector products split across worker threads give bit-identical results to one thread (every row is the
 * same kernel code over the same bytes), for every kernel; a whole stage gives the same logits; bad thread counts are
 * refused.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { encodeTensor, makeTinyModel, SeededRandom } from "@tessera/testkit";
import { GGML_TYPE } from "./gguf-reader.js";
import { loadKQuant, q8kDOffset, q8kRowBytes, q8kSumsOffset, quantizeQ8K } from "./k-quants.js";
import { MatvecPool } from "./matvec-pool.js";
import { loadStage } from "./stage.js";
import { assembleModule } from "./wasm-asm.js";
import { KERNELS } from "./wasm-kernels.js";
import { wasmArena } from "./wasm-matvec.js";

const arena = wasmArena()!;
const dir = mkdtempSync(join(tmpdir(), "matvec-pool-"));
afterAll(() => {
  arena.threads = 1;
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `product` (writing `rows` floats at `out`) with 1 thread and with `threads`; returns both results. */
function oneAndMany(threads: number, rows: number, product: (out: number) => void): [number[], number[]] {
  const out = arena.alloc(rows);
  const read = () => Array.from(arena.heap.subarray(out >> 2, (out >> 2) + rows));
  arena.threads = 1;
  product(out);
  const one = read();
  arena.heap.fill(0, out >> 2, (out >> 2) + rows);
  arena.threads = threads;
  product(out);
  const many = read();
  arena.threads = 1;
  return [one, many];
}

function randomFloats(n: number, seed: number): Float32Array {
  return new SeededRandom(seed).normals(n, 1);
}

describe("matrix-vector products on worker threads", () => {
  const rows = 301; // not a multiple of the thread count: the parts differ in size
  const cols = 512;

  it("F32, F16 and BF16 products are bit-identical with 1, 2 and 3 threads", () => {
    const w32 = arena.alloc(rows * cols);
    arena.heap.set(randomFloats(rows * cols, 1), w32 >> 2);
    const w16 = arena.alloc(rows * cols, 2);
    const halves = encodeTensor("F16", randomFloats(rows * cols, 2));
    new Uint8Array(arena.memory.buffer, w16, halves.length).set(halves);
    const wbf = arena.alloc(rows * cols, 2);
    const bf16 = encodeTensor("BF16", randomFloats(rows * cols, 6));
    new Uint8Array(arena.memory.buffer, wbf, bf16.length).set(bf16);
    const x = arena.alloc(cols);
    arena.heap.set(randomFloats(cols, 3), x >> 2);
    for (const threads of [2, 3]) {
      const [a, b] = oneAndMany(threads, rows, (out) => arena.matvec(w32, x, out, rows, cols));
      expect(b).toEqual(a);
      const [c, d] = oneAndMany(threads, rows, (out) => arena.matvecF16(w16, x, out, rows, cols, cols * 2));
      expect(d).toEqual(c);
      expect(c.some((v) => v !== 0)).toBe(true);
      const [e, f] = oneAndMany(threads, rows, (out) => arena.matvecBF16(wbf, x, out, rows, cols, cols * 2));
      expect(f).toEqual(e);
      expect(e.some((v) => v !== 0)).toBe(true);
    }
  });

  it.each(["Q4_K", "Q6_K"] as const)("%s products are bit-identical with 1 and 3 threads", (type) => {
    const kCols = 1024;
    const buf = encodeTensor(type, new SeededRandom(4).normals(rows * kCols, 0.05));
    const m = loadKQuant(buf, { name: "w", dims: [kCols, rows], type: GGML_TYPE[type], fileOffset: 0, byteLength: buf.length, elementCount: rows * kCols });
    const base = arena.alloc(q8kRowBytes(kCols), 1);
    quantizeQ8K(arena, randomFloats(kCols, 5), 1, kCols, base);
    const kernel = type === "Q4_K" ? arena.matvecQ4K : arena.matvecQ6K;
    const [a, b] = oneAndMany(3, rows, (out) => kernel(m.quants, m.scales, m.d, base, base + q8kDOffset(kCols), base + q8kSumsOffset(kCols), out, rows, kCols));
    expect(b).toEqual(a);
    expect(a.some((v) => v !== 0)).toBe(true);
  });

  it("Q8_0 products are bit-identical with 1 and 2 threads", () => {
    const qs = arena.alloc(rows * cols, 1);
    const scales = arena.alloc((rows * cols) / 32);
    const rnd = new SeededRandom(6).normals(rows * cols, 40);
    for (let i = 0; i < rows * cols; i++) arena.heapI8[qs + i] = Math.max(-127, Math.min(127, Math.round(rnd[i]!)));
    arena.heap.fill(0.01, scales >> 2, (scales >> 2) + (rows * cols) / 32);
    const xq = arena.alloc(cols, 1);
    for (let i = 0; i < cols; i++) arena.heapI8[xq + i] = (i % 255) - 127;
    const xs = arena.alloc(cols / 32);
    arena.heap.fill(0.02, xs >> 2, (xs >> 2) + cols / 32);
    const [a, b] = oneAndMany(2, rows, (out) => arena.matvecQ8(qs, scales, xq, xs, out, rows, cols));
    expect(b).toEqual(a);
  });

  it("a stage's logits are the same with 2 threads as with 1", async () => {
    const info = await makeTinyModel({ path: join(dir, "k.gguf"), weightType: "q4_k_m", vocab: "bytes", blockCount: 2, embeddingLength: 256, feedForwardLength: 512 });
    const stage = loadStage({ path: info.path, start: 0, end: 2 });
    const prompt = [1, 72, 101, 108, 108, 111];
    const positions = prompt.map((_, i) => i);
    arena.threads = 1;
    const one = Array.from(stage.forward("a", prompt, positions));
    arena.threads = 2;
    const two = Array.from(stage.forward("b", prompt, positions));
    arena.threads = 1;
    expect(two).toEqual(one);
  });

  it("reports workers that stopped answering instead of waiting for ever", async () => {
    // (lib "dom" is not in this repo's tsconfig, so the WebAssembly API is declared here as wasm-matvec.ts does)
    const WA = (globalThis as unknown as { WebAssembly: { Memory: new (d: object) => object; Module: new (b: Uint8Array) => object } }).WebAssembly;
    const memory = new WA.Memory({ initial: 1, maximum: 65536, shared: true });
    const pool = new MatvecPool(new WA.Module(assembleModule(KERNELS, 65536)), memory, 2, 300);
    pool.close(); // the worker exits: nobody will run what is assigned next
    await new Promise((r) => setTimeout(r, 100));
    pool.assign(1, 0, 0, 0, 0, 0, 16);
    pool.start();
    expect(() => pool.finish()).toThrow(/worker threads stopped answering \(0 of 1 finished/);
  });

  it("refuses a thread count that is not a whole number from 1 to 256", () => {
    for (const n of [0, -1, 1.5, 257, NaN]) {
      expect(() => (arena.threads = n)).toThrow(TesseraError);
    }
    expect(arena.threads).toBe(1);
  });
});
