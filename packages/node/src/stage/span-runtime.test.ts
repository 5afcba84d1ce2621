/**
 * Choosing a span's runtime: wasm and ggml-cpu give their own runtime with the same answers; auto takes ggml-cpu
 * here (its libraries are installed and its self-check passes) and falls back to wasm, saying why, when ggml cannot
 * load or computes wrong; ggml-cpu named explicitly fails instead of falling back; an unknown name is bad_request.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { loadGgml } from "./ggml/ggml-lib.js";
import { ggmlSelfCheck } from "./ggml/ggml-self-check.js";
import { GgmlStage } from "./ggml/ggml-stage.js";
import { loadSpan, probeGgmlCpu, type StageBackend } from "./span-runtime.js";
import { Stage } from "./stage.js";

let dir: string;
let path: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "span-runtime-"));
  path = (await makeTinyModel({ path: join(dir, "tiny.gguf"), weightType: "q8_0", vocab: "bytes", seed: 3, blockCount: 2 })).path;
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const brokenLoad = { load: () => { throw new TesseraError("internal_error", "the ggml libraries are not installed"); }, check: () => {} };

describe("loadSpan", () => {
  it("runs wasm and ggml-cpu as asked, with the same logits", () => {
    const wasm = loadSpan({ path, start: 0, end: 2, backend: "wasm" });
    const ggml = loadSpan({ path, start: 0, end: 2, backend: "ggml-cpu" });
    expect(wasm.runtime).toBe("wasm");
    expect(wasm.span).toBeInstanceOf(Stage);
    expect(ggml.runtime).toBe("ggml-cpu");
    expect(ggml.span).toBeInstanceOf(GgmlStage);
    expect(ggml.detail).toMatch(/ggml-cpu/);
    const a = ggml.span.forward("r", [1, 2, 3], [0, 1, 2]).slice();
    const b = wasm.span.forward("r", [1, 2, 3], [0, 1, 2]);
    const max = Math.max(...b.map(Math.abs));
    for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-3 * max);
    (ggml.span as GgmlStage).close();
  });

  it("auto takes ggml-cpu when it loads and passes its self-check", () => {
    expect(probeGgmlCpu().ok).toBe(true);
    const auto = loadSpan({ path, start: 0, end: 1, backend: "auto" });
    expect(auto.runtime).toBe("ggml-cpu");
    (auto.span as GgmlStage).close();
  });

  it("auto falls back to wasm and says why when ggml does not load or fails its self-check", () => {
    const noLib = loadSpan({ path, start: 0, end: 1, backend: "auto" }, brokenLoad);
    expect(noLib.runtime).toBe("wasm");
    expect(noLib.detail).toContain("not installed");
    const wrong = { load: loadGgml, check: () => { throw new Error("ggml F16 mat-vec row 0: 1, expected 2"); } };
    const failed = loadSpan({ path, start: 0, end: 1, backend: "auto" }, wrong);
    expect(failed.runtime).toBe("wasm");
    expect(failed.detail).toContain("mat-vec row 0");
  });

  it("ggml-cpu named explicitly fails instead of falling back; an unknown backend is bad_request", () => {
    expect(() => loadSpan({ path, start: 0, end: 1, backend: "ggml-cpu" }, brokenLoad)).toThrow(/not usable here/);
    try {
      loadSpan({ path, start: 0, end: 1, backend: "cuda" as StageBackend });
      expect.unreachable();
    } catch (err) {
      expect((err as TesseraError).code).toBe("bad_request");
    }
  });

  it("the real self-check passes on this machine's CPU variant", () => {
    expect(() => ggmlSelfCheck(loadGgml())).not.toThrow();
  });
});
