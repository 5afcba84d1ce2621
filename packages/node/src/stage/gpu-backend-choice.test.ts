/**
 * Choosing a GPU backend for spans, with injected probes (no GPU here): what `auto` takes for each combination of
 * backends that run, that a GPU backend named explicitly is refused with `unsupported_parameter` naming what is
 * missing (never a CPU run instead), that a span is started on the chosen device, and the memory a GPU node offers.
 */
import { describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import type { GpuBackend, GpuDevice, GpuProbeResult } from "./ggml/ggml-gpu.js";
import type { GgmlLib } from "./ggml/ggml-lib.js";
import type { GgmlWorkerSpan, LoadGgmlWorkerSpanOptions } from "./ggml/ggml-worker-span.js";
import { loadSpan, resolveStageRuntime, spanGpuMemoryOffer, type GgmlProbe, type GpuStageBackend, type StageBackend } from "./span-runtime.js";

const lib = { dir: "/nlc/bins/linux-x64-vulkan", cpuVariant: "libggml-cpu-zen4.so", version: "@node-llama-cpp/linux-x64-vulkan 3.22.1, ggml v0.5.0" } as GgmlLib;
const GiB = 2 ** 30;

function device(index: number, totalGiB: number, freeGiB = totalGiB): GpuDevice {
  return { index, name: `Dev${index}`, description: `GPU ${index}`, integrated: false, freeBytes: freeGiB * GiB, totalBytes: totalGiB * GiB };
}

function gpu(kind: GpuStageBackend, devices: GpuDevice[]): GpuBackend {
  return {
    kind, dir: `/rt/${kind}`, baseDir: lib.dir, file: `libggml-${kind}.so`, devices,
    device: (i) => ({ handle: i }),
    memory: (i) => devices.find((d) => d.index === i)!,
  };
}

const WHY: Record<GpuStageBackend, string> = {
  cuda: "no cuda build is installed (...): `tessera gpu setup --build cuda` installs it",
  metal: "node-llama-cpp publishes no metal build for linux-x64",
  vulkan: "the Vulkan loader (libvulkan.so.1) is not installed",
};

/** A probe where the GPU backends in `runs` initialise (with the given devices) and ggml-cpu loads when `cpu`. */
function probe(runs: Partial<Record<GpuStageBackend, GpuDevice[]>>, cpu = true, calls: string[] = []): GgmlProbe {
  return {
    load: () => {
      calls.push("ggml-cpu");
      if (!cpu) throw new TesseraError("internal_error", "the ggml libraries are not installed");
      return lib;
    },
    check: () => {},
    gpu: (kind): GpuProbeResult => {
      calls.push(kind);
      const devices = runs[kind];
      return devices ? { ok: true, lib, gpu: gpu(kind, devices) } : { ok: false, why: WHY[kind] };
    },
  };
}

describe("auto with GPU backends", () => {
  const table: { name: string; runs: Partial<Record<GpuStageBackend, GpuDevice[]>>; cpu: boolean; picks: string; skipped: GpuStageBackend[] }[] = [
    { name: "CUDA and Vulkan both run: CUDA", runs: { cuda: [device(0, 24)], vulkan: [device(0, 24)] }, cpu: true, picks: "cuda", skipped: [] },
    { name: "only Vulkan runs: Vulkan, saying why CUDA and Metal were skipped", runs: { vulkan: [device(0, 16)] }, cpu: true, picks: "vulkan", skipped: ["cuda", "metal"] },
    { name: "only Metal runs: Metal", runs: { metal: [device(0, 64)] }, cpu: true, picks: "metal", skipped: ["cuda"] },
    { name: "no GPU backend runs: ggml-cpu, saying why each was skipped", runs: {}, cpu: true, picks: "ggml-cpu", skipped: ["cuda", "metal", "vulkan"] },
    { name: "nothing of ggml runs: wasm, with every reason", runs: {}, cpu: false, picks: "wasm", skipped: ["cuda", "metal", "vulkan"] },
    { name: "a GPU runs though ggml-cpu would not: the GPU", runs: { vulkan: [device(0, 8)] }, cpu: false, picks: "vulkan", skipped: ["cuda", "metal"] },
  ];
  for (const row of table) {
    it(row.name, () => {
      const choice = resolveStageRuntime("auto", probe(row.runs, row.cpu));
      expect(choice.runtime).toBe(row.picks);
      for (const kind of row.skipped) expect(choice.detail).toContain(`${kind}: ${WHY[kind]}`);
      if (row.skipped.length === 0) expect(choice.detail).not.toContain("skipped");
      if (row.picks === "wasm") expect(choice.detail).toContain("ggml-cpu not usable: the ggml libraries are not installed");
    });
  }

  it("takes the device with the most memory and names it, its free memory and the library", () => {
    const choice = resolveStageRuntime("auto", probe({ vulkan: [device(0, 8, 6), device(1, 24, 20)] }));
    expect(choice.runtime).toBe("vulkan");
    expect(choice.runtime && choice.device?.index).toBe(1);
    expect(choice.detail).toMatch(/^GPU 1 \(vulkan device 1, 20\.0 of 24\.0 GiB free\), libggml-vulkan\.so from \/rt\/vulkan/);
  });

  it("names the devices that failed their compute check beside the one it takes (the probe left them out)", () => {
    const failing = "vulkan device 1 (GPU 1) failed its compute check: ggml F16 mat-vec row 0: NaN, expected 1.25";
    const choice = resolveStageRuntime("auto", {
      ...probe({}),
      gpu: (kind) => (kind === "vulkan" ? { ok: true, lib, gpu: gpu(kind, [device(0, 8)]), failed: [failing] } : { ok: false, why: WHY[kind] }),
    });
    expect(choice.runtime).toBe("vulkan");
    expect(choice.detail).toMatch(/^GPU 0 \(vulkan device 0, .*; compute check passed; skipped cuda: .*; metal: .*; vulkan device 1 \(GPU 1\) failed its compute check: ggml F16 mat-vec row 0: NaN/);
  });

  it("ggml-cpu and wasm named explicitly never probe a GPU", () => {
    const calls: string[] = [];
    expect(resolveStageRuntime("ggml-cpu", probe({ cuda: [device(0, 24)] }, true, calls)).runtime).toBe("ggml-cpu");
    expect(resolveStageRuntime("wasm", probe({ cuda: [device(0, 24)] }, true, calls)).runtime).toBe("wasm");
    expect(calls).toEqual(["ggml-cpu"]);
  });
});

describe("a GPU backend named explicitly", () => {
  for (const kind of ["cuda", "metal", "vulkan"] as const) {
    it(`${kind} that cannot run is refused with unsupported_parameter naming what is missing, and nothing else is tried`, async () => {
      const calls: string[] = [];
      const choice = resolveStageRuntime(kind, probe({}, true, calls));
      expect(choice).toEqual({ runtime: undefined, code: "unsupported_parameter", detail: `stage backend ${kind} cannot run here: ${WHY[kind]}` });
      expect(calls).toEqual([kind]);
      await expect(loadSpan({ path: "/unused.gguf", start: 0, end: 1, backend: kind }, probe({}))).rejects.toMatchObject({ code: "unsupported_parameter", message: expect.stringContaining(WHY[kind]) });
    });
  }

  it("that runs starts a span in a worker on the chosen device, with the same release's base library", async () => {
    let started: LoadGgmlWorkerSpanOptions | undefined;
    const fakeSpan = { allocatedBytes: 3 * 2 ** 20 } as GgmlWorkerSpan;
    const p: GgmlProbe = { ...probe({ vulkan: [device(0, 4), device(1, 16)] }), startSpan: async (o) => ((started = o), fakeSpan) };
    const loaded = await loadSpan({ path: "/m.gguf", start: 2, end: 5, backend: "vulkan", gpuRuntimeDir: "/data/gpu-runtime" }, p);
    expect(loaded.runtime).toBe("vulkan");
    expect(loaded.span).toBe(fakeSpan);
    expect(started).toMatchObject({ path: "/m.gguf", start: 2, end: 5, libDir: lib.dir, cpuVariant: lib.cpuVariant, gpu: { kind: "vulkan", dir: "/rt/vulkan", device: 1 } });
    expect(loaded.detail).toContain("3.0 MiB of weights on the device");
  });

  it("passes the GPU runtime folder to the probe", () => {
    const seen: (string | undefined)[] = [];
    const p: GgmlProbe = { ...probe({}), gpu: (kind, where) => (seen.push(where.gpuRuntimeDir), { ok: false, why: WHY[kind] }) };
    resolveStageRuntime("vulkan", p, { gpuRuntimeDir: "/data/gpu-runtime" });
    expect(seen).toEqual(["/data/gpu-runtime"]);
  });
});

describe("memory a GPU node offers for spans", () => {
  it("is the device's free memory, at most max_vram_fraction of its total", () => {
    const choice = (free: number, total: number) => resolveStageRuntime("vulkan", probe({ vulkan: [device(0, total, free)] }));
    expect(spanGpuMemoryOffer(choice(20, 24), 0.5)).toBe(12 * GiB);
    expect(spanGpuMemoryOffer(choice(6, 24), 0.8)).toBe(6 * GiB);
    expect(spanGpuMemoryOffer(choice(24, 24), 1)).toBe(24 * GiB);
    expect(() => spanGpuMemoryOffer(choice(24, 24), 0)).toThrow(RangeError);
  });

  it("is not the GPU's for the CPU runtimes (they offer RAM)", () => {
    expect(spanGpuMemoryOffer(resolveStageRuntime("ggml-cpu", probe({ vulkan: [device(0, 24)] })), 0.8)).toBeUndefined();
    expect(spanGpuMemoryOffer(resolveStageRuntime("wasm" as StageBackend, probe({})), 0.8)).toBeUndefined();
  });
});
