/**
 * ggml's GPU backends without a GPU: where a backend's library is looked for, what a failed load tells the operator,
 * that a library of another release is refused, that a backend registering no GPU device is refused, the device API's
 * bindings, a span through the device path (ggml_backend_dev_init, the device's buffer type, the op check) on ggml's
 * CPU device (the one device here) equal to the CPU backend's, an op the device lacks refused by name, and, when node-llama-cpp's Vulkan build is at hand without a network (TESSERA_TEST_GPU_RUNTIME_DIR, a
 * `tessera gpu setup` prefix holding @node-llama-cpp/linux-x64-vulkan), that loading it finds no GPU here and `auto`
 * falls back to ggml-cpu.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel, relativeError } from "@tessera/testkit";
import { resolveStageRuntime } from "../span-runtime.js";
import { f32ToF16Bits } from "../f16.js";
import { checkGpuDevices, explainGpuLoadError, findGpuLib, gpuPackages, openGpuBackend, probeGpuBackend, type GpuBackend } from "./ggml-gpu.js";
import { GGML, ffi, findGgmlDir, libFile, loadGgml, type GgmlLib } from "./ggml-lib.js";
import { DEVICE_TOLERANCE, ggmlMatVec, ggmlSelfCheck } from "./ggml-self-check.js";
import { loadGgmlStage, loadGgmlStageOn } from "./ggml-stage.js";

const tmp = mkdtempSync(join(tmpdir(), "ggml-gpu-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A fake `tessera gpu setup` prefix whose Vulkan package holds the given files. */
function fakeRuntime(name: string, files: Record<string, string>): { runtimeDir: string; bins: string } {
  const runtimeDir = join(tmp, name);
  const bins = join(runtimeDir, "node_modules", "@node-llama-cpp", "linux-x64-vulkan", "bins", "linux-x64-vulkan");
  mkdirSync(bins, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(bins, file), text);
  return { runtimeDir, bins };
}

const linuxX64 = process.platform === "linux" && process.arch === "x64";

describe("finding a GPU backend's library", () => {
  it("knows node-llama-cpp's package for each backend and platform", () => {
    expect(gpuPackages("vulkan", "linux", "x64")).toEqual(["@node-llama-cpp/linux-x64-vulkan"]);
    expect(gpuPackages("cuda", "win32", "x64")).toEqual(["@node-llama-cpp/win-x64-cuda", "@node-llama-cpp/win-x64-cuda-ext"]);
    expect(gpuPackages("metal", "darwin", "arm64")).toEqual(["@node-llama-cpp/mac-arm64-metal"]);
    expect(gpuPackages("metal", "linux", "x64")).toEqual([]);
    expect(gpuPackages("cuda", "darwin", "arm64")).toEqual([]);
  });

  it.runIf(linuxX64)("finds it under the GPU runtime prefix, or says that `tessera gpu setup` installs it", () => {
    const { runtimeDir, bins } = fakeRuntime("found", { "libggml-vulkan.so": "", "libggml-base.so": "" });
    expect(findGpuLib("vulkan", { gpuRuntimeDir: runtimeDir })).toEqual({ dir: bins, baseDir: bins });
    const missing = findGpuLib("vulkan", { gpuRuntimeDir: join(tmp, "empty") });
    expect(missing).toEqual({ missing: expect.stringMatching(/^no vulkan build is installed \(libggml-vulkan\.so of @node-llama-cpp\/linux-x64-vulkan not found in .*empty.*\): `tessera gpu setup --build vulkan` installs it$/) });
    // The lean install's stub beside node-llama-cpp is not a build and is not listed.
    expect((missing as { missing: string }).missing).not.toContain("omitted-gpu-variant");
    expect(findGpuLib("metal", {})).toEqual({ missing: "node-llama-cpp publishes no metal build for linux-x64" });
  });

  it("explains a failed load by the system library that is missing", () => {
    const p = "/rt/libggml-x.so";
    expect(explainGpuLoadError("vulkan", p, "libvulkan.so.1: cannot open shared object file: No such file or directory")).toMatch(/^the Vulkan loader \(libvulkan\.so\.1\) is not installed/);
    expect(explainGpuLoadError("cuda", p, "libcuda.so.1: cannot open shared object file")).toMatch(/^the NVIDIA driver is missing \(libcuda\.so\.1 not found\)/);
    expect(explainGpuLoadError("cuda", p, "libcudart.so.12: cannot open shared object file")).toMatch(/^the CUDA runtime is not installed \(libcudart \/ libcublas not found\)/);
    expect(explainGpuLoadError("cuda", p, "libcublas.so.12: cannot open shared object file")).toMatch(/^the CUDA runtime is not installed/);
    expect(explainGpuLoadError("metal", p, "image not found")).toBe("cannot load the metal backend /rt/libggml-x.so: image not found");
  });
});

describe.runIf(linuxX64 && findGgmlDir() !== undefined)("loading a GPU backend beside the loaded libggml-base", () => {
  const cpuDir = findGgmlDir()!;
  const meta = readFileSync(join(cpuDir, "_nlcBuildMetadata.json"), "utf8");

  it("refuses a library of another ggml release (one libggml-base per process)", () => {
    const g = loadGgml();
    const { bins } = fakeRuntime("other-release", { "libggml-vulkan.so": "", "_nlcBuildMetadata.json": meta.replace(/"release":"[^"]+"/, '"release":"v9.9.9"') });
    expect(() => openGpuBackend(g, "vulkan", bins)).toThrow(expect.objectContaining({ code: "unsupported_parameter", message: expect.stringMatching(/is ggml v9\.9\.9, the loaded libggml-base .* is v/) }));
  });

  it("says what is wrong with a library that does not load", () => {
    const g = loadGgml();
    const { bins } = fakeRuntime("broken", { "libggml-vulkan.so": "not an ELF file", "_nlcBuildMetadata.json": meta });
    expect(() => openGpuBackend(g, "vulkan", bins)).toThrow(expect.objectContaining({ code: "unsupported_parameter", message: expect.stringMatching(/^stage backend vulkan cannot run here: cannot load the vulkan backend .*libggml-vulkan\.so: /) }));
  });

  it("enumerates a real backend's devices and refuses one that has no GPU device (the CPU library standing in as a GPU build)", () => {
    const g = loadGgml();
    // The CPU library exports ggml_backend_init too (ggml's dynamic-backend entry point); it registers one CPU device.
    const { bins } = fakeRuntime("cpu-as-gpu", { "_nlcBuildMetadata.json": meta });
    symlinkSync(join(g.dir, g.cpuVariant), join(bins, "libggml-vulkan.so"));
    expect(() => openGpuBackend(g, "vulkan", bins)).toThrow(expect.objectContaining({ code: "unsupported_parameter", message: expect.stringMatching(/^stage backend vulkan cannot run here: libggml-vulkan\.so \(CPU\) loaded but found no GPU device \(only CPU\)/) }));
  });

  it("binds the device API (checked on ggml's CPU device: name, type, memory, init)", () => {
    const g = loadGgml();
    const cpu = ffi().load(join(g.dir, g.cpuVariant));
    const reg = (cpu.func("ggml_backend_reg * ggml_backend_cpu_reg(void)") as () => unknown)();
    expect(g.regName(reg)).toBe("CPU");
    expect(g.regDevCount(reg)).toBe(1);
    const dev = g.regDevGet(reg, 0);
    expect(g.devType(dev)).toBe(0); // GGML_BACKEND_DEVICE_TYPE_CPU
    expect(g.devName(dev)).toBe("CPU");
    expect(g.devDescription(dev).length).toBeGreaterThan(0);
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    g.devMemory(dev, free, total);
    expect(Number(total[0])).toBeGreaterThan(2 ** 28);
    expect(Number(free[0])).toBeGreaterThan(0);
    expect(Number(free[0])).toBeLessThanOrEqual(Number(total[0]));
    const backend = g.devInit(dev, null);
    expect(backend).toBeTruthy();
    expect(g.backendName(backend)).toBe("CPU");
    g.backendFree(backend);
  });

  it("offers only the devices that initialise and pass the compute check, and no backend when none does", () => {
    const g = loadGgml();
    const dev = cpuDevice(g);
    const memory = { freeBytes: 2 ** 30, totalBytes: 2 ** 30 };
    const devices = [0, 1].map((index) => ({ index, name: "CPU", description: `device ${index}`, integrated: false, ...memory }));
    const gpu: GpuBackend = { kind: "vulkan", dir: g.dir, baseDir: g.dir, file: "libggml-vulkan.so", devices, device: () => dev, memory: () => memory };
    // The real check, on a real device through the device API (ggml's CPU device, standing in for both).
    expect(checkGpuDevices(g, gpu)).toEqual({ ok: true, lib: g, gpu: { ...gpu, devices } });

    // Device 1 computes wrong (its check throws as ggmlSelfCheck does): left out, and said why.
    let checked = 0;
    const secondWrong = (lib: GgmlLib, backend: unknown) => {
      if (checked++ === 1) throw new Error("ggml F16 mat-vec row 0: NaN, expected 1.25");
      ggmlSelfCheck(lib, backend);
    };
    expect(checkGpuDevices(g, gpu, secondWrong)).toEqual({ ok: true, lib: g, gpu: { ...gpu, devices: [devices[0]] }, failed: ["vulkan device 1 (device 1) failed its compute check: ggml F16 mat-vec row 0: NaN, expected 1.25"] });
    expect(checkGpuDevices(g, gpu, () => { throw new Error("all zeros"); })).toEqual({
      ok: false,
      why: "vulkan device 0 (device 0) failed its compute check: all zeros; vulkan device 1 (device 1) failed its compute check: all zeros",
    });
    // A device that does not initialise.
    expect(checkGpuDevices({ ...g, devInit: () => null } as GgmlLib, gpu)).toEqual({ ok: false, why: "vulkan device 0 (device 0) did not initialise; vulkan device 1 (device 1) did not initialise" });
  });

  it("checks a device's products against the reference: a wrong weight moves them past the tolerance", () => {
    const g = loadGgml();
    const backend = g.devInit(cpuDevice(g), null);
    try {
      expect(() => ggmlSelfCheck(g, backend)).not.toThrow();
      // What a device that computes wrong answers: the same mat-vec with one weight changed is caught.
      const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
      const halves = Uint16Array.from({ length: 16 * 64 }, (_, i) => f32ToF16Bits(Math.cos(i)));
      const right = ggmlMatVec(g, GGML.F16, 16, 64, new Uint8Array(halves.buffer), x, backend);
      halves[3 * 64 + 5] = f32ToF16Bits(Math.cos(3 * 64 + 5) + 1);
      const wrong = ggmlMatVec(g, GGML.F16, 16, 64, new Uint8Array(halves.buffer), x, backend);
      const max = Math.max(...right.map(Math.abs));
      expect(Math.abs(wrong[3]! - right[3]!) / max).toBeGreaterThan(DEVICE_TOLERANCE);
    } finally {
      g.backendFree(backend);
    }
  });
});

/** node-llama-cpp's real Vulkan build, if the machine has it without a network. */
const vulkanRuntime = process.env.TESSERA_TEST_GPU_RUNTIME_DIR;
const vulkanBins = vulkanRuntime && join(vulkanRuntime, "node_modules", "@node-llama-cpp", "linux-x64-vulkan", "bins", "linux-x64-vulkan");
const haveVulkan = linuxX64 && !!vulkanBins && existsSync(join(vulkanBins, libFile("ggml-vulkan")));
if (!haveVulkan) {
  console.info("ggml-gpu.test: skipping the real Vulkan build test: set TESSERA_TEST_GPU_RUNTIME_DIR to a `tessera gpu setup` prefix holding @node-llama-cpp/linux-x64-vulkan (tests download nothing)");
}

describe.runIf(haveVulkan)("node-llama-cpp's Vulkan build on a machine without a GPU", () => {
  it("loads with the same release's base but finds no GPU, and auto falls back to ggml-cpu saying why", () => {
    const probe = probeGpuBackend("vulkan", { gpuRuntimeDir: vulkanRuntime });
    expect(probe.ok).toBe(false);
    const why = (probe as { why: string }).why;
    // The Vulkan loader is missing, or it is there and finds no driver, or a driver without a GPU (a CPU device).
    expect(why).toMatch(/the Vulkan loader \(libvulkan\.so\.1\) is not installed|loaded but did not initialise: the Vulkan loader found no driver|loaded but found no GPU device/);
    console.info(`ggml-gpu.test: the real Vulkan build here: ${why}`);
    const auto = resolveStageRuntime("auto", undefined, { gpuRuntimeDir: vulkanRuntime });
    expect(auto.runtime).toBe("ggml-cpu");
    expect(auto.detail).toContain(`vulkan: ${why}`);
    const named = resolveStageRuntime("vulkan", undefined, { gpuRuntimeDir: vulkanRuntime });
    expect(named).toMatchObject({ runtime: undefined, code: "unsupported_parameter", detail: `stage backend vulkan cannot run here: ${why}` });
  });
});

/** ggml's CPU device through the device API: what a GPU span does, on the one device this machine has. */
function cpuDevice(g: GgmlLib): unknown {
  const cpu = ffi().load(join(g.dir, g.cpuVariant));
  return g.regDevGet((cpu.func("ggml_backend_reg * ggml_backend_cpu_reg(void)") as () => unknown)(), 0);
}

describe.runIf(findGgmlDir() !== undefined)("a span on a device (the GPU path, run on ggml's CPU device)", () => {
  let path: string;
  const dir = join(tmp, "device-span");
  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    path = (await makeTinyModel({ path: join(dir, "tiny-f16.gguf"), weightType: "f16", vocab: "bytes", seed: 7, blockCount: 3 })).path;
  }, 120_000);

  it("allocates in the device's buffer type, checks the graph's ops, and computes what the CPU backend computes", () => {
    const onCpu = loadGgmlStage({ path, start: 0, end: 3 });
    const onDevice = loadGgmlStageOn({ path, start: 0, end: 3 }, (g) => {
      const backend = g.devInit(cpuDevice(g), null);
      g.backendCpuSetNThreads(backend, 1); // the device's default is 4 threads, which spin against each other on 2 vCPUs
      return { backend, device: "test" };
    });
    try {
      expect(onDevice.backendName).toBe("CPU");
      expect(onDevice.allocatedBytes).toBeGreaterThanOrEqual(onDevice.loadedBytes);
      const prompt = [3, 1, 4, 1, 5, 9, 2, 6];
      const positions = prompt.map((_, i) => i);
      // A batch first, then single rows past the cache's first growth: both batch shapes are checked op by op.
      const want = onCpu.forward("r", prompt, positions, { logits: "all" }).slice();
      const got = onDevice.forward("r", prompt, positions, { logits: "all" }).slice();
      expect(relativeError(got, want)).toBeLessThan(1e-5);
      for (let t = 0; t < 60; t++) {
        const a = onCpu.forward("r", [t % 200], [prompt.length + t]);
        const b = onDevice.forward("r", [t % 200], [prompt.length + t]);
        expect(Array.from(b.subarray(0, 8))).toEqual(Array.from(a.subarray(0, 8)).map((v) => expect.closeTo(v, 4)));
      }
      expect(onDevice.cachedTokens("r")).toBe(68);
    } finally {
      onCpu.close();
      onDevice.close();
    }
  });
});

describe.runIf(findGgmlDir() !== undefined)("a device that lacks an op of the span's graph", () => {
  it("fails the step with unsupported_parameter naming the op, and computes nothing elsewhere", async () => {
    const path = (await makeTinyModel({ path: join(tmp, "tiny-q8.gguf"), weightType: "q8_0", vocab: "bytes", seed: 7, blockCount: 2 })).path;
    const g = loadGgml();
    const supports = g.backendSupportsOp;
    const span = loadGgmlStageOn({ path, start: 0, end: 2 }, (lib) => {
      const backend = lib.devInit(cpuDevice(lib), null);
      lib.backendCpuSetNThreads(backend, 1);
      return { backend, device: "vulkan" };
    });
    // The device answers as one without ggml_soft_max_ext would (ggml_backend_supports_op is asked per node).
    (g as { backendSupportsOp: GgmlLib["backendSupportsOp"] }).backendSupportsOp = (backend, op) => g.opDesc(op) !== "SOFT_MAX" && supports(backend, op);
    try {
      expect(() => span.forward("r", [1, 2], [0, 1])).toThrow(expect.objectContaining({ code: "unsupported_parameter", message: expect.stringMatching(/^the vulkan device \(CPU\) does not support ggml op SOFT_MAX of this span's graph/) }));
      expect(span.cachedTokens("r")).toBe(0);
    } finally {
      (g as { backendSupportsOp: GgmlLib["backendSupportsOp"] }).backendSupportsOp = supports;
      span.close();
    }
  }, 120_000);
});
