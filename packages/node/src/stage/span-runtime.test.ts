/**
 * Choosing a span's runtime: wasm and ggml-cpu give their own runtime with the same answers; auto takes ggml-cpu
 * here (its libraries are installed and its self-check passes) and falls back to wasm, saying why, when ggml cannot
 * load or computes wrong; ggml-cpu named explicitly fails instead of falling back; an unknown name is bad_request.
 * resolveStageRuntime (what doctor prints) makes the same decision without loading a span.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { loadGgml } from "./ggml/ggml-lib.js";
import { ggmlSelfCheck } from "./ggml/ggml-self-check.js";
import { GgmlWorkerSpan } from "./ggml/ggml-worker-span.js";
import { loadSpan, probeGgmlCpu, resolveStageRuntime, WasmSpan, type StageBackend } from "./span-runtime.js";

let dir: string;
let path: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "span-runtime-"));
  path = (await makeTinyModel({ path: join(dir, "tiny.gguf"), weightType: "q8_0", vocab: "bytes", seed: 3, blockCount: 2 })).path;
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const brokenLoad = { load: () => { throw new TesseraError("internal_error", "the ggml libraries are not installed"); }, check: () => {} };

describe("loadSpan", () => {
  it("runs wasm and ggml-cpu as asked, with the same logits", async () => {
    const wasm = await loadSpan({ path, start: 0, end: 2, backend: "wasm" });
    const ggml = await loadSpan({ path, start: 0, end: 2, backend: "ggml-cpu" });
    expect(wasm.runtime).toBe("wasm");
    expect(wasm.span).toBeInstanceOf(WasmSpan);
    expect(ggml.runtime).toBe("ggml-cpu");
    expect(ggml.span).toBeInstanceOf(GgmlWorkerSpan);
    // The log names the CPU variant, the build and where it came from, and that the span computes in a worker.
    expect(ggml.detail).toMatch(/^libggml-cpu\S*, @node-llama-cpp\/\S+ \d+\.\d+\.\d+, ggml v\S+, from \/\S+; in a worker thread, 1 thread\(s\)$/);
    const a = (await ggml.span.forward("r", [1, 2, 3], [0, 1, 2])).slice();
    const b = await wasm.span.forward("r", [1, 2, 3], [0, 1, 2]);
    const max = Math.max(...b.map(Math.abs));
    for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-3 * max);
    await ggml.span.close();
    await wasm.span.close();
  });

  it("auto takes ggml-cpu when it loads and passes its self-check", async () => {
    expect(probeGgmlCpu().ok).toBe(true);
    const auto = await loadSpan({ path, start: 0, end: 1, backend: "auto" });
    expect(auto.runtime).toBe("ggml-cpu");
    await auto.span.close();
  });

  it("auto falls back to wasm and says why when ggml does not load or fails its self-check", async () => {
    const noLib = await loadSpan({ path, start: 0, end: 1, backend: "auto" }, brokenLoad);
    expect(noLib.runtime).toBe("wasm");
    expect(noLib.detail).toContain("not installed");
    const wrong = { load: loadGgml, check: () => { throw new Error("ggml F16 mat-vec row 0: 1, expected 2"); } };
    const failed = await loadSpan({ path, start: 0, end: 1, backend: "auto" }, wrong);
    expect(failed.runtime).toBe("wasm");
    expect(failed.detail).toContain("mat-vec row 0");
  });

  it("ggml-cpu named explicitly fails instead of falling back; an unknown backend is bad_request", async () => {
    await expect(loadSpan({ path, start: 0, end: 1, backend: "ggml-cpu" }, brokenLoad)).rejects.toThrow(/not usable here/);
    await expect(loadSpan({ path, start: 0, end: 1, backend: "rocm" as StageBackend })).rejects.toMatchObject({ code: "bad_request" });
    expect(() => resolveStageRuntime("rocm" as StageBackend)).toThrow(TesseraError);
  });

  it("resolveStageRuntime says what each setting runs here, and why auto falls back", () => {
    expect(resolveStageRuntime("wasm")).toEqual({ runtime: "wasm", detail: "WebAssembly SIMD" });
    const auto = resolveStageRuntime("auto");
    expect(auto.runtime).toBe("ggml-cpu");
    // No GPU build is installed here (the lean install's GPU packages are stubs): auto says why it skipped each.
    expect(auto.detail).toMatch(/^libggml-cpu\S*, @node-llama-cpp\/.*; self-check passed; skipped cuda: .*; metal: .*; vulkan: .*/);
    expect(resolveStageRuntime("ggml-cpu").runtime).toBe("ggml-cpu");
    expect(resolveStageRuntime("auto", brokenLoad)).toEqual({ runtime: "wasm", detail: "ggml-cpu not usable: the ggml libraries are not installed" });
    expect(resolveStageRuntime("ggml-cpu", brokenLoad)).toEqual({ runtime: undefined, code: "internal_error", detail: "stage backend ggml-cpu is not usable here: the ggml libraries are not installed" });
  });

  it("the real self-check passes on this machine's CPU variant", () => {
    expect(() => ggmlSelfCheck(loadGgml())).not.toThrow();
  });
});
