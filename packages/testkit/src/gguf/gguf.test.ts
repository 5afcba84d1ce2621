import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bfloat16BitsToFloat32 } from "./bfloat16.js";
import { float16BitsToFloat32, float32ToFloat16Bits } from "./float16.js";
import { readGgufMetadata } from "./gguf-metadata-reader.js";
import { encodeTensor, gguf, writeGguf } from "./gguf-writer.js";
import { SeededRandom } from "./seeded-random.js";
import { makeTinyModel } from "./tiny-model.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("float16", () => {
  it("rounds to nearest even and keeps specials", () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN)))).toBe(true);
    for (const v of [0.1, -3.75, 1234.5, 6e-5]) {
      expect(Math.abs(float16BitsToFloat32(float32ToFloat16Bits(v)) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11);
    }
  });
});

describe("GGUF writer and metadata reader", () => {
  it("round-trips every value type, arrays included, and aligns tensor data to 32 bytes", async () => {
    const path = join(dir, "kv.gguf");
    const size = await writeGguf(path, {
      metadata: [
        ["a.u8", { type: "uint8", value: 200 }],
        ["a.i8", { type: "int8", value: -5 }],
        ["a.u16", { type: "uint16", value: 60000 }],
        ["a.i16", { type: "int16", value: -30000 }],
        ["a.u32", gguf.u32(4_000_000_000)],
        ["a.i32", gguf.i32(-7)],
        ["a.f32", gguf.f32(0.5)],
        ["a.f64", { type: "float64", value: Math.PI }],
        ["a.u64", gguf.u64(2n ** 40n)],
        ["a.i64", { type: "int64", value: -3n }],
        ["a.bool", gguf.bool(true)],
        ["a.str", gguf.str("héllo ▁")],
        ["a.strs", gguf.arr("string", ["x", "", "ü"])],
        ["a.f32s", gguf.arr("float32", [1.5, -2])],
        ["a.i32s", gguf.arr("int32", [1, -1])],
      ],
      tensors: [
        { name: "t.f32", dims: [3], type: "F32", data: () => Float32Array.from([1, 2, 3]) },
        { name: "t.f16", dims: [32, 2], type: "F16", data: () => new Float32Array(64).fill(1) },
      ],
    });
    const bytes = await readFile(path);
    expect(bytes.length).toBe(size);
    const { version, tensorCount, metadata } = await readGgufMetadata(path);
    expect(version).toBe(3);
    expect(tensorCount).toBe(2n);
    expect(Object.fromEntries(metadata)).toEqual({
      "a.u8": 200, "a.i8": -5, "a.u16": 60000, "a.i16": -30000, "a.u32": 4_000_000_000, "a.i32": -7, "a.f32": 0.5,
      "a.f64": Math.PI, "a.u64": 2n ** 40n, "a.i64": -3n, "a.bool": true, "a.str": "héllo ▁", "a.strs": ["x", "", "ü"],
      "a.f32s": [1.5, -2], "a.i32s": [1, -1],
    });
    // Data section: F32 tensor (12 bytes) padded to 32, then the F16 tensor (128 bytes) — ends the file.
    expect(size % 32).toBe(0);
    expect(bytes.readUInt16LE(size - 2)).toBe(0x3c00);
    expect(bytes.readFloatLE(size - 128 - 32)).toBe(1);
  });

  it("quantizes Q8_0 blocks as ggml does (f16 scale amax/127, int8 rounded half away from zero)", () => {
    const values = new Float32Array(32).map((_, i) => (i - 16) / 4);
    const block = encodeTensor("Q8_0", values);
    expect(block.length).toBe(34);
    expect(float16BitsToFloat32(block.readUInt16LE(0))).toBeCloseTo(4 / 127, 4);
    expect(block.readInt8(2)).toBe(-127);
    expect(block.readInt8(2 + 16)).toBe(0);
    expect(block.readInt8(2 + 31)).toBe(Math.round((15 / 4) * (127 / 4)));
  });

  it("writes BF16 as the f32's top 16 bits rounded to nearest even (ggml_compute_fp32_to_bf16), NaN kept quiet", () => {
    const bits = (v: number) => encodeTensor("BF16", Float32Array.of(v)).readUInt16LE(0);
    expect(bits(1)).toBe(0x3f80);
    expect(bits(-2)).toBe(0xc000);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (down); 1 + 3·2^-8 ties up.
    expect(bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(bits(3.4e38)).toBe(0x7f80); // rounds past the largest finite bf16 to +Inf
    expect(bits(NaN) & 0x7fc0).toBe(0x7fc0);
    for (const v of [0.1, -3.14159, 1e-30, 65504]) {
      expect(Math.abs(bfloat16BitsToFloat32(bits(v)) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
    }
  });

  it("quantizes Q4_K and Q6_K super-blocks close to the values (read back as ggml's dequantize_row_q4_K/q6_K lay them out)", async () => {
    const values = new SeededRandom(7).normals(512, 1);
    const q4 = encodeTensor("Q4_K", values);
    const q6 = encodeTensor("Q6_K", values);
    expect(q4.length).toBe(2 * 144);
    expect(q6.length).toBe(2 * 210);
    const half = (b: Buffer, o: number) => float16BitsToFloat32(b.readUInt16LE(o));
    const rms = (got: number[]) => Math.sqrt(got.reduce((a, v, i) => a + (v - values[i]) ** 2, 0) / got.length);
    const got4: number[] = [];
    for (let b = 0; b < 2; b++) {
      const o = b * 144;
      const s = q4.subarray(o + 4, o + 16);
      const scaleMin = (j: number) =>
        j < 4 ? [s[j] & 63, s[j + 4] & 63] : [(s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
      for (let c = 0; c < 4; c++) {
        for (const [j, shift] of [[2 * c, 0], [2 * c + 1, 4]] as const) {
          const [sc, m] = scaleMin(j);
          for (let l = 0; l < 32; l++) got4.push(half(q4, o) * sc * ((q4[o + 16 + 32 * c + l] >> shift) & 15) - half(q4, o + 2) * m);
        }
      }
    }
    const got6: number[] = [];
    for (let b = 0; b < 2; b++) {
      const o = b * 210;
      const out = new Array<number>(256);
      for (let n = 0; n < 2; n++) {
        for (let l = 0; l < 32; l++) {
          const ql0 = q6[o + 64 * n + l];
          const ql1 = q6[o + 64 * n + l + 32];
          const qh = q6[o + 128 + 32 * n + l];
          const quants = [(ql0 & 15) | ((qh & 3) << 4), (ql1 & 15) | (((qh >> 2) & 3) << 4), (ql0 >> 4) | (((qh >> 4) & 3) << 4), (ql1 >> 4) | (((qh >> 6) & 3) << 4)];
          quants.forEach((q, k) => (out[128 * n + l + 32 * k] = half(q6, o + 208) * q6.readInt8(o + 192 + 8 * n + 2 * k + (l >> 4)) * (q - 32)));
        }
      }
      got6.push(...out);
    }
    expect(rms(got4)).toBeGreaterThan(0);
    expect(rms(got4)).toBeLessThan(0.15); // 4 bits over a range of ~5 standard deviations
    expect(rms(got6)).toBeLessThan(0.04);
    await expect(writeGguf(join(dir, "bad-k.gguf"), { metadata: [], tensors: [{ name: "q", dims: [128], type: "Q4_K", data: () => new Float32Array(128) }] })).rejects.toThrow(/multiple of 256/);
  });

  it("refuses bad input with a clear message", async () => {
    await expect(
      writeGguf(join(dir, "bad.gguf"), { metadata: [], tensors: [{ name: "q", dims: [31], type: "Q8_0", data: () => new Float32Array(31) }] }),
    ).rejects.toThrow(/multiple of 32/);
    await expect(makeTinyModel({ path: join(dir, "bad2.gguf"), embeddingLength: 60, headCount: 8 })).rejects.toThrow(/multiple of headCount/);
    await expect(makeTinyModel({ path: join(dir, "bad3.gguf"), weightType: "q4_k_m" })).rejects.toThrow(/multiples of 256/);
  });
});

describe("makeTinyModel", () => {
  let llama: Llama;
  beforeAll(async () => {
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  });
  afterAll(async () => {
    await llama.dispose();
  });

  it("is byte-identical for the same seed and different for another seed", async () => {
    const a = await makeTinyModel({ path: join(dir, "a.gguf"), seed: 3, vocab: "bytes" });
    const b = await makeTinyModel({ path: join(dir, "b.gguf"), seed: 3, vocab: "bytes" });
    const c = await makeTinyModel({ path: join(dir, "c.gguf"), seed: 4, vocab: "bytes" });
    expect(a.sha256).toBe(b.sha256);
    expect(Buffer.compare(await readFile(a.path), await readFile(b.path))).toBe(0);
    expect(c.sha256).not.toBe(a.sha256);
    expect(a.vocabSize).toBe(260);
  });

  it.each(["f32", "f16", "bf16", "q8_0", "q4_k_m"] as const)("writes a %s model llama.cpp loads, with deterministic greedy output", async (weightType) => {
    // K-quants need rows of 256 values.
    const wide = weightType === "q4_k_m" ? { embeddingLength: 256, feedForwardLength: 512 } : {};
    const info = await makeTinyModel({ path: join(dir, `m-${weightType}.gguf`), seed: 11, weightType, vocab: "spm", ...wide });
    expect(info.vocabSize).toBe(32000);
    const model = await llama.loadModel({ modelPath: info.path });
    try {
      expect(model.fileInfo.metadata.general.architecture).toBe("llama");
      const context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
      const runs: number[][] = [];
      for (let r = 0; r < 2; r++) {
        const sequence = context.getSequence();
        const out: number[] = [];
        for await (const token of sequence.evaluate(model.tokenize("The quick brown fox", true), { temperature: 0 })) {
          out.push(token);
          if (out.length === 32 || model.isEogToken(token)) break;
        }
        sequence.dispose();
        runs.push(out);
      }
      await context.dispose();
      expect(runs[0].length).toBeGreaterThan(8);
      expect(runs[1]).toEqual(runs[0]);
      // Peaked distribution: the output is not one token repeated, and reads as pieces of words.
      expect(new Set(runs[0]).size).toBeGreaterThan(4);
      expect(model.detokenize(runs[0] as Token[])).toMatch(/[a-z]{3}/);
    } finally {
      await model.dispose();
    }
  });

  it("has a 50m preset of about 50 M F16 parameters", async () => {
    // Checked from the dims: writing the 113 MB file takes ≈3 s here and belongs to the issue-5 tests and benches.
    const { TINY_PRESETS } = await import("./tiny-model.js");
    const d = TINY_PRESETS["50m"];
    const kv = (d.embeddingLength / d.headCount) * d.headCountKv;
    const perLayer = 2 * d.embeddingLength * d.embeddingLength + 2 * d.embeddingLength * kv + 3 * d.embeddingLength * d.feedForwardLength + 2 * d.embeddingLength;
    const total = 2 * 32000 * d.embeddingLength + d.embeddingLength + d.blockCount * perLayer;
    expect(total).toBeGreaterThan(45e6);
    expect(total).toBeLessThan(60e6);
    expect(d.weightType).toBe("f16");
  });
});
