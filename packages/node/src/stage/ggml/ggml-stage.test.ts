/**
 * The ggml span (ggml's CPU backend through FFI) against the WebAssembly runtime on the same generated files (F32, F16,
 * BF16, Q8_0): logits and hidden states within 1e-3 of the largest magnitude (1e-2 for BF16, see BOUND), a WebAssembly span chained with a ggml span
 * equal to an all-WebAssembly run, batched evaluation equal to one-by-one within the same bound (past the cache's
 * first capacity, so the cache grows), and bad input refused as the WebAssembly stage refuses it. Every test runs twice:
 * on the span in the test's own thread (GgmlStage) and on the span in its worker thread (GgmlWorkerSpan), as the
 * daemon runs it, whose activations cross the thread boundary through the shared I/O buffer.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { makeTinyModel, relativeError, type TinyModelInfo } from "@tessera/testkit";
import { loadStage } from "../stage.js";
import { loadGgmlStage, type LoadGgmlStageOptions } from "./ggml-stage.js";
import { GgmlWorkerSpan } from "./ggml-worker-span.js";

const LAYERS = 3;
let dir: string;
const models = new Map<string, TinyModelInfo>();

/** What the tests use of either span; the worker's forward answers a promise, the in-thread one an array. */
interface SpanUnderTest {
  readonly vocabSize: number;
  readonly activeRequests: number;
  forward(requestId: string, input: Float32Array | readonly number[], positions: readonly number[], options?: { logits?: "last" | "all" }): Float32Array | Promise<Float32Array>;
  cachedTokens(requestId: string): number;
  dropRequest(requestId: string): boolean;
  close(): unknown;
}
const open: SpanUnderTest[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ggml-stage-"));
  for (const weightType of ["f32", "f16", "bf16", "q8_0"] as const) {
    models.set(weightType, await makeTinyModel({ path: join(dir, `tiny-${weightType}.gguf`), weightType, vocab: "bytes", seed: 5, blockCount: LAYERS }));
  }
  // K-quant rows are 256 values long.
  models.set("q4_k_m", await makeTinyModel({ path: join(dir, "tiny-q4_k_m.gguf"), weightType: "q4_k_m", vocab: "bytes", seed: 5, blockCount: LAYERS, embeddingLength: 256, feedForwardLength: 512 }));
}, 120_000);

afterAll(async () => {
  for (const s of open) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Largest relative difference allowed between the ggml and WebAssembly spans (and between batched and one-by-one):
 * 1e-3, one F16 ulp of an activation flipped; 1e-2 for BF16, whose ulp is 2^-8 = 3.9e-3 (measured here: 2.7e-3 against
 * WebAssembly, 2.6e-3 batched against one by one; ggml/design.md).
 */
const BOUND: Record<string, number> = { f32: 1e-3, f16: 1e-3, bf16: 1e-2, q8_0: 1e-3 };

const PROMPT = [1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100];
const positions = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

const RUNTIMES: Array<[string, (o: LoadGgmlStageOptions) => SpanUnderTest | Promise<SpanUnderTest>]> = [
  ["in-thread", (o) => loadGgmlStage(o)],
  ["worker thread", (o) => GgmlWorkerSpan.load(o)],
];

describe.each(RUNTIMES)("ggml span, %s", (_runtime, load) => {
  async function ggml(path: string, start: number, end: number, maxContext?: number, microBatch?: number): Promise<SpanUnderTest> {
    const s = await load({ path, start, end, maxContext, microBatch });
    open.push(s);
    return s;
  }

  describe.each(["f32", "f16", "bf16", "q8_0"])("ggml span (%s) against the WebAssembly runtime", (type) => {
    it("gives the same logits over the whole model, at every prompt position and while decoding", async () => {
      const path = models.get(type)!.path;
      const wasm = loadStage({ path, start: 0, end: LAYERS });
      const g = await ggml(path, 0, LAYERS);
      expect(relativeError(await g.forward("a", PROMPT, positions(0, PROMPT.length), { logits: "all" }), wasm.forward("a", PROMPT, positions(0, PROMPT.length), { logits: "all" }))).toBeLessThan(BOUND[type]);
      for (let i = 0; i < 8; i++) {
        const tok = [40 + i];
        const pos = [PROMPT.length + i];
        expect(relativeError((await g.forward("a", tok, pos)).slice(), wasm.forward("a", tok, pos))).toBeLessThan(BOUND[type]);
      }
      expect(g.cachedTokens("a")).toBe(PROMPT.length + 8);
      expect(g.dropRequest("a")).toBe(true);
      expect(g.activeRequests).toBe(0);
    });

    it("gives the same hidden states from a first span, and a WebAssembly span chained with a ggml span equals all-WebAssembly", async () => {
      const path = models.get(type)!.path;
      const wasmAll = loadStage({ path, start: 0, end: LAYERS });
      const wasmHead = loadStage({ path, start: 0, end: 1 });
      const wasmFirst2 = loadStage({ path, start: 0, end: 2 });
      const gFirst2 = await ggml(path, 0, 2);
      const gTail = await ggml(path, 1, LAYERS);
      const pos = positions(0, PROMPT.length);
      expect(relativeError((await gFirst2.forward("h", PROMPT, pos)).slice(), wasmFirst2.forward("h", PROMPT, pos))).toBeLessThan(BOUND[type]);
      const hidden = wasmHead.forward("c", PROMPT, pos).slice();
      expect(relativeError((await gTail.forward("c", hidden, pos)).slice(), wasmAll.forward("c", PROMPT, pos))).toBeLessThan(BOUND[type]);
      for (let i = 0; i < 4; i++) {
        const p = [PROMPT.length + i];
        const h = wasmHead.forward("c", [50 + i], p).slice();
        expect(relativeError((await gTail.forward("c", h, p)).slice(), wasmAll.forward("c", [50 + i], p))).toBeLessThan(BOUND[type]);
      }
    });

    it("evaluates a batch as it evaluates the same rows one by one, past the cache's first capacity", async () => {
      const path = models.get(type)!.path;
      const g = await ggml(path, 0, LAYERS);
      const tokens = Array.from({ length: 100 }, (_, i) => (i * 37 + 11) % 256);
      const batched = (await g.forward("batch", tokens, positions(0, tokens.length), { logits: "all" })).slice();
      for (let i = 0; i < tokens.length; i++) {
        const one = await g.forward("single", [tokens[i]], [i]);
        // Not bit-identical (design.md, "Batched and one-by-one"): ~1e-7 until an activation's F16 (BF16) rounding flips.
        expect(relativeError(one.slice(), batched.subarray(i * g.vocabSize, (i + 1) * g.vocabSize).slice())).toBeLessThan(BOUND[type]);
      }
      expect(g.cachedTokens("single")).toBe(100);
    });
  });

  it("splits a prompt longer than its micro-batch into micro-batches over one cache, as the same rows one by one", async () => {
    const path = models.get("f16")!.path;
    const g = await ggml(path, 0, LAYERS, undefined, 16);
    const tokens = Array.from({ length: 100 }, (_, i) => (i * 37 + 11) % 256);
    const all = (await g.forward("all", tokens, positions(0, tokens.length), { logits: "all" })).slice();
    const last = (await g.forward("last", tokens, positions(0, tokens.length))).slice();
    for (let i = 0; i < tokens.length; i++) {
      const one = (await g.forward("single", [tokens[i]], [i])).slice();
      expect(relativeError(one, all.subarray(i * g.vocabSize, (i + 1) * g.vocabSize).slice())).toBeLessThan(BOUND.f16);
      if (i === tokens.length - 1) expect(relativeError(one, last)).toBeLessThan(BOUND.f16);
    }
    expect(g.cachedTokens("all")).toBe(100);
    expect(g.cachedTokens("last")).toBe(100);
    // The next step attends to every micro-batch's cells.
    const next = (await g.forward("all", [7], [100])).slice();
    expect(relativeError(next, (await g.forward("single", [7], [100])).slice())).toBeLessThan(BOUND.f16);
  });

  describe("ggml span (Q4_K_M: Q4_K and Q6_K matrices)", () => {
    // 5e-2 as against llama.cpp (../stage-vs-llamacpp.test.ts): one Q8_K rounding flip of an activation moves logits ~1e-2.
    it("gives the same logits as the WebAssembly runtime within 5e-2, and a chained span too", async () => {
      const path = models.get("q4_k_m")!.path;
      const wasm = loadStage({ path, start: 0, end: LAYERS });
      const wasmHead = loadStage({ path, start: 0, end: 1 });
      const g = await ggml(path, 0, LAYERS);
      const gTail = await ggml(path, 1, LAYERS);
      const pos = positions(0, PROMPT.length);
      const want = wasm.forward("q", PROMPT, pos, { logits: "all" }).slice();
      expect(relativeError((await g.forward("q", PROMPT, pos, { logits: "all" })).slice(), want)).toBeLessThan(5e-2);
      expect(relativeError((await gTail.forward("q", wasmHead.forward("q", PROMPT, pos).slice(), pos, { logits: "all" })).slice(), want)).toBeLessThan(5e-2);
    });
  });

  describe("ggml span input checks", () => {
    it("refuses what the WebAssembly stage refuses, with bad_request, and keeps the cache unchanged", async () => {
      const path = models.get("f16")!.path;
      await expect(Promise.resolve().then(() => load({ path, start: 2, end: 2 }))).rejects.toThrow(TesseraError);
      const first = await ggml(path, 0, 1);
      const tail = await ggml(path, 1, LAYERS);
      const code = async (f: () => unknown): Promise<string | undefined> => {
        try {
          await f();
        } catch (err) {
          return err instanceof TesseraError ? err.code : "other";
        }
        return undefined;
      };
      expect(await code(() => first.forward("r", new Float32Array(64), [0]))).toBe("bad_request");
      expect(await code(() => first.forward("r", [999], [0]))).toBe("bad_request");
      expect(await code(() => first.forward("r", [1, 2], [0]))).toBe("bad_request");
      expect(await code(() => tail.forward("r", [1], [0]))).toBe("bad_request");
      expect(await code(() => tail.forward("r", new Float32Array(3), [0]))).toBe("bad_request");
      expect(await code(() => first.forward("r", [1], [-1]))).toBe("bad_request");
      expect(await code(() => first.forward("r", [1.5], [0]))).toBe("bad_request");
      expect(first.cachedTokens("r")).toBe(0);
      const small = await ggml(path, 0, 1, 4);
      expect(await code(() => small.forward("r", [1, 2, 3, 4, 5], positions(0, 5)))).toBe("bad_request");
      // A refused call leaves the span usable.
      expect((await first.forward("r", [1], [0])).length).toBe(64);
    });
  });
});

describe("ggml span, micro-batches", () => {
  it("bounds the compute buffer by the micro-batch, not the prompt", () => {
    const path = models.get("f16")!.path;
    const whole = loadGgmlStage({ path, start: 0, end: LAYERS });
    const split = loadGgmlStage({ path, start: 0, end: LAYERS, microBatch: 32 });
    open.push(whole, split);
    const tokens = Array.from({ length: 300 }, (_, i) => (i * 29 + 7) % 256);
    whole.forward("p", tokens, positions(0, tokens.length));
    split.forward("p", tokens, positions(0, tokens.length));
    // kq alone is [n_kv, rows, n_head] F32: 320 x 300 x 4 x 4 bytes in one graph, 320 x 32 x 4 x 4 a micro-batch.
    expect(split.computeBufferBytes).toBeLessThan(whole.computeBufferBytes / 4);
  });

  it("bounds the attention's scores whatever the context: fewer rows a graph as the cache grows, the same logits", () => {
    const path = models.get("f16")!.path;
    const free = loadGgmlStage({ path, start: 0, end: LAYERS });
    // 32 KiB of kq: 4 heads x 4 bytes, so 2,048 cells x rows: 16 rows at 128 cells, 4 at 448.
    const bounded = loadGgmlStage({ path, start: 0, end: LAYERS, maxKqBytes: 32 * 1024 });
    open.push(free, bounded);
    const token = (i: number): number => (i * 31 + 3) % 256;
    const buffers: Array<[number, number]> = [];
    for (let from = 0; from < 400; from += 100) {
      const chunk = Array.from({ length: 100 }, (_, i) => token(from + i));
      const expected = free.forward("p", chunk, positions(from, 100), { logits: "all" }).slice();
      expect(relativeError(bounded.forward("p", chunk, positions(from, 100), { logits: "all" }), expected)).toBeLessThan(BOUND.f16);
      buffers.push([free.computeBufferBytes, bounded.computeBufferBytes]);
    }
    // Unbounded, a 100-row graph's kq grows with the cells it attends to (128 to 448 cells: 200 KiB to 700 KiB).
    expect(buffers[3]![0]).toBeGreaterThan(2 * buffers[0]![0]);
    // Bounded, it stays at its first size, under the unbounded span's first.
    expect(buffers[3]![1]).toBe(buffers[0]![1]);
    expect(buffers[0]![1]).toBeLessThan(buffers[0]![0]);
    expect(bounded.stepGraphsBuilt).toBeGreaterThan(free.stepGraphsBuilt);
  });

  it("refuses a bound that is not a positive integer", () => {
    const path = models.get("f16")!.path;
    for (const maxKqBytes of [0, -1, 1.5]) expect(() => loadGgmlStage({ path, start: 0, end: LAYERS, maxKqBytes })).toThrow(/attention's byte bound/);
  });
});

describe("ggml span, a step that fails", () => {
  it("leaves a request whose first step failed holding no cache, and a request with tokens as it was", () => {
    const g = loadGgmlStage({ path: models.get("f16")!.path, start: 0, end: LAYERS });
    open.push(g);
    // An output buffer too small for the logits fails the step after its cache was made (internal_error).
    const tooSmall = new Float32Array(g.vocabSize - 1);
    expect(() => g.forward("new", PROMPT, positions(0, PROMPT.length), {}, tooSmall)).toThrow(/output buffer/);
    expect(g.activeRequests).toBe(0);
    expect(g.cachedTokens("new")).toBe(0);
    expect(g.dropRequest("new")).toBe(false);

    g.forward("held", PROMPT, positions(0, PROMPT.length));
    expect(() => g.forward("held", [40], [PROMPT.length], {}, tooSmall)).toThrow(/output buffer/);
    expect(g.activeRequests).toBe(1);
    expect(g.cachedTokens("held")).toBe(PROMPT.length);
  });
});

describe("ggml span, a step's graph kept for the request's next steps", () => {
  it("builds a graph per shape, not per step, rebuilds one whose compute buffer moved, and computes what a span that never interleaved computes, to the bit", async () => {
    const path = models.get("f16")!.path;
    const g = loadGgmlStage({ path, start: 0, end: LAYERS });
    const alone = loadGgmlStage({ path, start: 0, end: LAYERS });
    open.push(g, alone);
    const steps = 150; // past two cache growths (64 -> 128 -> 256 cells) and three padded widths of the attention
    const token = (i: number): number => (i * 29 + 7) % 256;
    const step = (s: typeof g, id: string, i: number): Float32Array => s.forward(id, [token(i)], [PROMPT.length + i]).slice();
    g.forward("a", PROMPT, positions(0, PROMPT.length));
    alone.forward("a", PROMPT, positions(0, PROMPT.length));
    const builtAfterPrompt = g.stepGraphsBuilt;
    for (let i = 0; i < 20; i++) expect(step(g, "a", i)).toEqual(step(alone, "a", i));
    // Steps 0-19 hold 14-33 cells: one padded width, one graph.
    expect(g.stepGraphsBuilt - builtAfterPrompt).toBe(1);

    // Another request's long prompt grows the shared compute buffer: "a"'s kept graph points into the old one.
    g.forward("b", Array.from({ length: 300 }, (_, i) => token(i)), positions(0, 300));
    let built = g.stepGraphsBuilt;
    expect(step(g, "a", 20)).toEqual(step(alone, "a", 20));
    expect(g.stepGraphsBuilt - built).toBe(1);

    // Interleaved with "b"'s steps, each request keeps its own graph.
    built = g.stepGraphsBuilt;
    for (let i = 21; i < 30; i++) {
      expect(step(g, "a", i)).toEqual(step(alone, "a", i));
      g.forward("b", [token(i)], [300 + i - 21]);
    }
    expect(g.stepGraphsBuilt - built).toBe(1); // "b"'s first decode step

    for (let i = 30; i < steps; i++) expect(step(g, "a", i)).toEqual(step(alone, "a", i));
    expect(g.cachedTokens("a")).toBe(PROMPT.length + steps);
    // 163 cells at the end: a handful of graphs for 150 steps (one per padded width and cache size), not one a step.
    expect(alone.stepGraphsBuilt).toBeLessThanOrEqual(6);
    const logits = step(alone, "a", steps);
    expect(logits.every(Number.isFinite)).toBe(true);
  });
});

