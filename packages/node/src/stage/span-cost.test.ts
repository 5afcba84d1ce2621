/**
 * What a node's offer says a span costs on its backend: the bytes per layer computed before anything loads equal what
 * ggml then allocates for those layers (CPU backend and the device path, on a Q4_K_M file whose layers differ), the
 * WebAssembly cache's arena blocks at full context equal a real cache's, the offer's figure is the largest layer plus
 * one request's full-context cache, and the probe times a few middle layers in a worker on each backend.
 */
import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel } from "@tessera/testkit";
import { ffi, findGgmlDir, loadGgml, type GgmlLib } from "./ggml/ggml-lib.js";
import { ggmlSpanBytes, loadGgmlStage, loadGgmlStageOn } from "./ggml/ggml-stage.js";
import { openGguf } from "./gguf-reader.js";
import { KvCache, kvCacheBytesPerLayer } from "./kv-cache.js";
import { readLlamaConfig } from "./llama-config.js";
import { probeLayers, probeMsPerLayer, spanBytesPerLayer } from "./span-cost.js";
import { resolveStageRuntime } from "./span-runtime.js";
import { arenaBlockSize, wasmArena } from "./wasm-matvec.js";
import { residentBytes } from "./weights.js";

let dir: string;
let path: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "span-cost-"));
  // Q4_K_M: Q6_K for attn_v and ffn_down of some layers, Q4_K elsewhere, so layers differ in size.
  path = (await makeTinyModel({ path: join(dir, "k.gguf"), weightType: "q4_k_m", vocab: "bytes", blockCount: 6, embeddingLength: 256, feedForwardLength: 512 })).path;
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cpuDevice(g: GgmlLib): unknown {
  const cpu = ffi().load(join(g.dir, g.cpuVariant));
  return g.regDevGet((cpu.func("ggml_backend_reg * ggml_backend_cpu_reg(void)") as () => unknown)(), 0);
}

describe.runIf(findGgmlDir() !== undefined)("a layer's bytes on ggml, before loading", () => {
  it("equal what the CPU backend allocates for the same layers", () => {
    const g = loadGgml();
    const bytes = ggmlSpanBytes(g, g.cpuBufferType(), path);
    expect(new Set(bytes.layerWeights).size).toBeGreaterThan(1); // the layers do differ
    const stage = loadGgmlStage({ path, start: 1, end: 4 });
    try {
      expect(stage.allocatedBytes).toBe(bytes.layerWeights[1]! + bytes.layerWeights[2]! + bytes.layerWeights[3]!);
    } finally {
      stage.close();
    }
  });

  it("equal what a device allocates through the device path (ggml's CPU device here), in the device's buffer type", () => {
    const g = loadGgml();
    const dev = cpuDevice(g);
    const bytes = ggmlSpanBytes(g, g.devBufferType(dev), path);
    const stage = loadGgmlStageOn({ path, start: 2, end: 5 }, (lib) => ({ backend: lib.devInit(dev, null), device: "test" }));
    try {
      expect(stage.allocatedBytes).toBe(bytes.layerWeights[2]! + bytes.layerWeights[3]! + bytes.layerWeights[4]!);
    } finally {
      stage.close();
    }
  });

  it("the cache at full context: K of kv_dim x context F16 cells per layer and V of kv_dim x (context + 64), at the file's context or the one asked", () => {
    const g = loadGgml();
    const file = openGguf(path);
    const c = readLlamaConfig(file);
    file.close();
    const kvDim = c.nHeadKv * c.headDim;
    // A V row holds 64 cells more than the capacity (ggml/ggml-stage.ts, vRowCells).
    const kvBytes = (context: number) => kvDim * context * 2 + kvDim * (context + 64) * 2;
    expect(ggmlSpanBytes(g, g.cpuBufferType(), path)).toMatchObject({ context: c.contextLength, kvPerLayer: kvBytes(c.contextLength) });
    expect(ggmlSpanBytes(g, g.cpuBufferType(), path, 100)).toMatchObject({ context: 100, kvPerLayer: kvBytes(100) });
  });

  it("the offer's figure on ggml-cpu is the largest layer plus one request's full-context cache", () => {
    const g = loadGgml();
    const bytes = ggmlSpanBytes(g, g.cpuBufferType(), path);
    expect(spanBytesPerLayer(resolveStageRuntime("ggml-cpu"), path)).toBe(Math.max(...bytes.layerWeights) + bytes.kvPerLayer);
  });
});

describe("a layer's bytes on the WebAssembly runtime", () => {
  it("the cache's arena blocks at a context equal those of a cache grown to hold it", () => {
    const arena = wasmArena()!;
    for (const [rowWidth, cells] of [[128, 512], [320, 1000], [64, 64], [64, 65]] as const) {
      const cache = new KvCache(1, rowWidth, arena);
      cache.reserve(cells);
      expect(kvCacheBytesPerLayer(rowWidth, cells)).toBe(2 * arenaBlockSize(cache.capacity * rowWidth * 2));
      cache.release();
    }
  });

  it("the offer's figure is the largest layer's resident bytes (K-quants unpacked) plus that cache at the file's context", () => {
    const file = openGguf(path);
    const c = readLlamaConfig(file);
    const layers = [0, 1, 2, 3, 4, 5].map((l) => [...file.tensors.values()].filter((t) => t.name.startsWith(`blk.${l}.`)).reduce((a, t) => a + residentBytes(t), 0));
    file.close();
    expect(spanBytesPerLayer(resolveStageRuntime("wasm"), path)).toBe(Math.max(...layers) + kvCacheBytesPerLayer(c.nHeadKv * c.headDim, c.contextLength));
  });
});

describe("the speed probe", () => {
  it("loads up to four middle layers", () => {
    expect(probeLayers(1)).toEqual({ start: 0, end: 1 });
    expect(probeLayers(3)).toEqual({ start: 0, end: 3 });
    expect(probeLayers(6)).toEqual({ start: 1, end: 5 });
    expect(probeLayers(80)).toEqual({ start: 38, end: 42 });
  });

  it.each(["wasm", "ggml-cpu"] as const)("times steps on %s in a worker thread and answers the runtime that ran", async (backend) => {
    const probe = await probeMsPerLayer({ path, backend });
    expect(probe).toMatchObject({ ok: true, start: 1, end: 5, runtime: backend });
    expect(probe.msPerLayer).toBeGreaterThan(0);
    expect(probe.msPerLayer).toBeLessThan(1000);
  }, 60_000);

  it("a backend that cannot run is refused with the span's own error", async () => {
    await expect(probeMsPerLayer({ path, backend: "metal" })).rejects.toMatchObject({ code: "unsupported_parameter", message: expect.stringMatching(/stage backend metal cannot run here/) });
  }, 60_000);
});
