/**
 * A span on ggml's Vulkan backend, computed on a real Vulkan device. A machine without a GPU has Mesa's software one
 * (lavapipe: `apt-get install mesa-vulkan-drivers`), which ggml uses only when `GGML_VK_VISIBLE_DEVICES` names it (set
 * below for this file's process). Everything a GPU span does runs as on a GPU, only slower: the worker thread, the
 * device's buffers, the op check, ggml's Vulkan shaders. Checked against llama.cpp's own Vulkan build (node-llama-cpp's,
 * from the same `tessera gpu setup` prefix): the same 64 greedy tokens and the prompt's logits for F16, Q8_0 and
 * Q4_K_M files; logits within the spread measured between ggml's Vulkan and CPU backends; batched evaluation (a
 * failover's replay) within the spread measured against one token at a time. The figures and how they were measured: docs/sharding.md, "The Vulkan
 * path without a GPU".
 *
 * Needs TESSERA_TEST_GPU_RUNTIME_DIR, a prefix holding @node-llama-cpp/linux-x64-vulkan (tests download nothing), and
 * a Vulkan device. Mandatory under CI=true (`.ci/run` installs Mesa's device and the build); skipped with a notice
 * elsewhere.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agreementPrompt, llamaGreedyTokens, llamaPromptLogits, makeTinyModel, measureSpanAgreement, relativeError, type TinyWeightType, vulkanTestDevice } from "@tessera/testkit";
import { type GetLlama, loadLlama } from "../../gpu-runtime/load-llama.js";
import { loadSpan } from "../span-runtime.js";
import { loadGgmlStage } from "./ggml-stage.js";

// Before anything loads a Vulkan library: ggml reads GGML_VK_VISIBLE_DEVICES when it first lists devices.
const device = vulkanTestDevice("ggml-vulkan-device.test.ts");
const runtimeDir = device.skip === undefined ? device.runtimeDir : undefined;

/** Greedy tokens generated after the prompt, fed back one at a time. */
const DECODED = 64;
const LAYERS = 3;

/**
 * The largest differences `npm run bench -- span-agreement --backend vulkan` measured on Mesa's device (five seeds of
 * each weight type, docs/sharding.md), each as `relativeError`: the span's prompt logits against llama.cpp's Vulkan
 * build's (`llama`), its prompt logits and decode steps against ggml's CPU backend's (`cpu`), one token at a time
 * against the batch (`batch`). The test allows twice each. A wrong kernel, position or cache row is off by the order
 * of the logits themselves; RoPE's frequency base 1.5 times too large moved the logits against llama.cpp's by 2.1e-2 to
 * 2.3e-2.
 */
const MEASURED: Record<"f16" | "q8_0" | "q4_k_m", { llama: number; cpu: number; batch: number }> = {
  f16: { llama: 3.71e-3, cpu: 3.65e-3, batch: 5.25e-3 },
  q8_0: { llama: 3.63e-3, cpu: 2.41e-2, batch: 4.57e-3 },
  q4_k_m: { llama: 8.22e-3, cpu: 3.0e-2, batch: 1.02e-2 },
};

describe.skipIf(device.skip !== undefined)("a span on ggml's Vulkan backend, on a Vulkan device", () => {
  let dir: string;
  let llama: Llama;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ggml-vulkan-"));
    llama = (await loadLlama({ runtimeDir, getLlama: getLlama as GetLlama, logLevel: LlamaLogLevel.error, log: () => {} })).llama;
  }, 120_000);
  afterAll(async () => {
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("is chosen when named, with the device it found, once the device passed its compute check", () => {
    expect((device as { detail: string }).detail).toMatch(/\(vulkan device \d+, [\d.]+ of [\d.]+ GiB free\), libggml-vulkan\.so from .*; compute check passed/);
    expect(llama.gpu).toBe("vulkan");
  });

  it.each(["f16", "q8_0", "q4_k_m"] as const)(
    "computes llama.cpp's Vulkan logits and tokens with %s weights, near ggml's CPU backend, a batch near one by one",
    async (weightType: TinyWeightType & keyof typeof MEASURED) => {
      // The bench's seed-7 file and prompt, one of the cases the tolerances were measured on.
      const wide = weightType === "q4_k_m" ? { embeddingLength: 256, feedForwardLength: 512 } : {};
      const path = (await makeTinyModel({ path: join(dir, `${weightType}.gguf`), weightType, vocab: "bytes", seed: 7, blockCount: LAYERS, ...wide })).path;
      const prompt = agreementPrompt(7);
      const reference = await llamaGreedyTokens(llama, path, prompt, DECODED, true);
      const referenceLogits = await llamaPromptLogits(llama, path, prompt, true);
      const { span, runtime } = await loadSpan({ path, start: 0, end: LAYERS, backend: "vulkan", gpuRuntimeDir: runtimeDir });
      const cpu = loadGgmlStage({ path, start: 0, end: LAYERS });
      try {
        expect(runtime).toBe("vulkan");
        const m = await measureSpanAgreement(span, cpu, prompt, DECODED);
        const allowed = MEASURED[weightType];
        expect(relativeError(m.promptLogits, referenceLogits)).toBeLessThan(2 * allowed.llama);
        expect(m.batchVsReference).toBeLessThan(2 * allowed.cpu);
        expect(m.stepsVsReference).toBeLessThan(2 * allowed.cpu);
        expect(m.oneByOneVsBatch).toBeLessThan(2 * allowed.batch);
        expect(m.greedy).toEqual(reference);
      } finally {
        cpu.close();
        await span.close();
      }
    },
    120_000,
  );
});
