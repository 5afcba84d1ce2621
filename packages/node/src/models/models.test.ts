import { describe, expect, it } from "vitest";
import { checkFit, estimateVram } from "./estimate-vram.js";
import { modelSizeFromName, parseParameterCount } from "./parameter-count.js";
import { parseQuantization } from "./quantization.js";
import { recommendedModel, tierForVram, VRAM_TIERS } from "./vram-tiers.js";
import { parseModelReference } from "../model-download/model-reference.js";

describe("parseQuantization", () => {
  it.each([
    ["Q4_K_M", "q4"],
    ["Q4_0", "q4"],
    ["IQ4_XS", "q4"],
    ["Q5_K_S", "q5"],
    ["Q6_K", "q6"],
    ["Q8_0", "q8"],
    ["F16", "f16"],
    ["BF16", "bf16"],
    ["F32", "f32"],
    ["Qwen2.5-7B-Instruct-AWQ", "int4"],
    ["Qwen2.5-7B-Instruct-GPTQ-Int4", "int4"],
    ["Llama-3.1-8B-Instruct-FP8", "fp8"],
    ["instruct-q8_0", "q8"],
    ["qwen2.5", undefined],
  ])("%s → %s", (label, quant) => {
    expect(parseQuantization(label)).toBe(quant);
  });
});

describe("parseParameterCount", () => {
  it.each([
    ["7.6B", 7.6],
    ["qwen2.5:7b", 7],
    ["llama3.1:70b-instruct-q8_0", 70],
    ["Qwen/Qwen2.5-14B-Instruct", 14],
    ["qwen2.5:0.5b", 0.5],
    ["smollm:360m", 0.36],
    ["mixtral:8x7b", 46.7],
    ["llama3.2", undefined],
  ])("%s → %s", (text, billions) => {
    expect(parseParameterCount(text)).toBe(billions);
  });

  it("Ollama details win over the name; defaults are Q4 for Ollama tags and BF16 for Hugging Face ids", () => {
    expect(modelSizeFromName("qwen2.5:7b")).toEqual({ paramsBillion: 7, quant: "q4" });
    expect(modelSizeFromName("qwen2.5:latest", { parameterSize: "7.6B", quantization: "Q8_0" })).toEqual({ paramsBillion: 7.6, quant: "q8" });
    expect(modelSizeFromName("Qwen/Qwen2.5-7B-Instruct")).toEqual({ paramsBillion: 7, quant: "bf16" });
    expect(modelSizeFromName("mystery-model")).toBeUndefined();
  });
});

describe("estimateVram: ≈2 bytes/param FP16, 1 INT8, 0.5 Q4, plus context", () => {
  it.each([
    // params, quant, expected weights in bytes
    [7, "f16", 14e9],
    [7, "int8", 7e9],
    [7, "q4", 3.5e9],
    [70, "q4", 35e9],
  ] as const)("%sB at %s has %d bytes of weights", (params, quant, weights) => {
    expect(estimateVram({ paramsBillion: params, quant }).weightsBytes).toBe(weights);
  });

  it("adds KV cache that grows with the context, and runtime overhead", () => {
    const short = estimateVram({ paramsBillion: 8, quant: "q4", contextTokens: 2048 });
    const long = estimateVram({ paramsBillion: 8, quant: "q4", contextTokens: 32768 });
    expect(short.kvCacheBytes).toBe(2048 * 128 * 1024);
    expect(long.kvCacheBytes).toBe(16 * short.kvCacheBytes);
    expect(short.totalBytes).toBe(short.weightsBytes + short.kvCacheBytes + short.overheadBytes);
    expect(estimateVram({ paramsBillion: 8, quant: "q4", kvBytesPerToken: 1000, contextTokens: 10 }).kvCacheBytes).toBe(10_000);
  });

  it.each([
    ["70B FP16 on a 24 GB card", 70, "f16", 24564, false],
    ["70B Q4 on a 24 GB card", 70, "q4", 24564, false],
    ["70B Q4 on a 48 GB card", 70, "q4", 49140, true],
    ["8B Q4 on an 8 GB card", 8, "q4", 8192, true],
    ["8B FP16 on a 12 GB card", 8, "f16", 12288, false],
    ["32B Q4 on a 24 GB card", 32, "q4", 24564, true],
  ] as const)("%s fits: %s", (_label, params, quant, vramMb, fits) => {
    expect(checkFit(estimateVram({ paramsBillion: params, quant }), vramMb).fits).toBe(fits);
  });

  it("refuses nonsense input with a clear error", () => {
    expect(() => estimateVram({ paramsBillion: 0, quant: "q4" })).toThrow(/paramsBillion/);
  });
});

describe("VRAM tiers", () => {
  it.each([
    [81920, ">=48gb"],
    [49140, ">=48gb"],
    [24564, ">=24gb"],
    [16384, ">=12gb"],
    [12288, ">=12gb"],
    [11264, ">=8gb"],
    [8192, ">=8gb"],
    [6144, "cpu"],
    [0, "cpu"],
  ] as const)("%i MiB → %s", (vramMb, tier) => {
    expect(tierForVram(vramMb)).toBe(tier);
  });

  it("each tier's recommended model fits the smallest card of that tier", () => {
    for (const spec of VRAM_TIERS.filter((s) => s.minGb > 0)) {
      const smallestCardMb = Math.ceil(spec.minGb * 1024 * 0.95);
      const estimate = estimateVram({ paramsBillion: spec.recommended.paramsBillion, quant: "q4" });
      expect(checkFit(estimate, smallestCardMb), `${spec.recommended.model} in ${spec.tier}`).toMatchObject({ fits: true });
    }
    expect(recommendedModel("cpu")).toBe("qwen2.5:1.5b");
    expect(recommendedModel(">=24gb")).toBe("qwen2.5:32b");
  });

  it("each tier's GGUF reference (for the embedded engine) is a valid hf: reference to the same size at Q4_K_M", () => {
    for (const spec of VRAM_TIERS) {
      const ref = parseModelReference(spec.recommended.gguf);
      expect(ref).toMatchObject({ kind: "hf-quant", quant: "Q4_K_M" });
      const size = modelSizeFromName(spec.recommended.gguf.replace(/^hf:/, ""));
      expect(size?.quant, spec.recommended.gguf).toBe("q4");
      expect(Math.abs(size!.paramsBillion - spec.recommended.paramsBillion), spec.recommended.gguf).toBeLessThan(1);
    }
  });

  it("the recommended model of a tier does not already fit the tier below (each step is an upgrade)", () => {
    const specs = VRAM_TIERS.filter((s) => s.minGb > 0);
    for (let k = 0; k + 1 < specs.length; k++) {
      const below = Math.ceil(specs[k + 1].minGb * 1024 * 0.95);
      expect(checkFit(estimateVram({ paramsBillion: specs[k].recommended.paramsBillion, quant: "q4" }), below).fits).toBe(false);
    }
  });
});
