import { describe, expect, it } from "vitest";
import { cmakeFeatureOptions, parseCpuinfoFlags, pickX86CpuVariant, runnableX86CpuVariant } from "./cpu-variant.js";

const AVX2 = "sse4_2 avx f16c fma avx2 bmi2";
const AVX512 = `${AVX2} avx512f avx512cd avx512vl avx512dq avx512bw`;

describe("the ggml CPU variant node-llama-cpp's prebuilt would load", () => {
  it.each([
    ["an old CPU without SSE4.2", "fpu sse2", "x64"],
    ["an AVX2 CPU (Haswell)", AVX2, "haswell"],
    ["an AVX-VNNI CPU without AVX512 (Alder Lake)", `${AVX2} avx_vnni`, "alderlake"],
    ["AVX512F alone is not enough for skylakex", `${AVX2} avx512f`, "haswell"],
    ["an AVX512 CPU (Skylake-X)", AVX512, "skylakex"],
    ["AMD Zen 4 (VBMI, VNNI, BF16; no AMX)", `${AVX512} avx512vbmi avx512_vnni avx512_bf16 avx_vnni`, "zen4"],
    ["Sapphire Rapids (AMX)", `${AVX512} avx512vbmi avx512_vnni avx512_bf16 avx_vnni amx_tile amx_int8`, "sapphirerapids"],
  ])("%s → %s", (_, flags, variant) => {
    expect(pickX86CpuVariant(parseCpuinfoFlags(`processor\t: 0\nflags\t\t: ${flags}\n`)).name).toBe(variant);
  });

  it("sets every x86 feature option explicitly, so cmake's ON defaults for AVX2 & co. cannot leak into an older variant", () => {
    const options = cmakeFeatureOptions(pickX86CpuVariant(parseCpuinfoFlags(`flags: sse4_2 avx`)).features);
    expect(options).toContain("-DGGML_AVX=ON");
    expect(options).toContain("-DGGML_AVX2=OFF");
    expect(options).toContain("-DGGML_FMA=OFF");
    expect(options).toContain("-DGGML_AMX_BF16=OFF");
  });
});

describe("another CPU's variant, asked for by name (another CPU's kernels on this one)", () => {
  const zen4 = parseCpuinfoFlags(`flags: ${AVX512} avx512vbmi avx512_vnni avx512_bf16 avx_vnni`);

  it.each(["haswell", "skylakex", "icelake", "alderlake", "zen4", "x64"])("a Zen 4 CPU runs %s", (name) => {
    expect(runnableX86CpuVariant(name, zen4).name).toBe(name);
  });

  it("refuses a variant whose instruction sets this CPU lacks, naming them", () => {
    expect(() => runnableX86CpuVariant("sapphirerapids", zen4)).toThrow(/cannot run the ggml CPU variant "sapphirerapids": it lacks AMX_TILE, AMX_INT8/);
    expect(() => runnableX86CpuVariant("skylakex", parseCpuinfoFlags(`flags: ${AVX2}`))).toThrow(/lacks AVX512$/);
    expect(() => runnableX86CpuVariant("haswell", parseCpuinfoFlags("flags: fpu sse2"))).toThrow(/lacks SSE42, AVX, F16C, FMA, AVX2, BMI2/);
  });

  it("refuses an unknown variant, listing the known ones", () => {
    expect(() => runnableX86CpuVariant("zen5", zen4)).toThrow(/unknown ggml x86 CPU variant "zen5"; known: x64, sse42, .*haswell/);
  });
});
