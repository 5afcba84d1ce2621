/**
 * ggml's GPU backends without a GPU: where a backend's library is looked for, what a failed load tells the operator,
 * that a library of another release is refused, the device API's bindings (on ggml's CPU device, the one device
 * here), and, when node-llama-cpp's Vulkan build is at hand without a network (TESSERA_TEST_GPU_RUNTIME_DIR, a
 * `tessera gpu setup` prefix holding @node-llama-cpp/linux-x64-vulkan), that loading it finds no GPU here and `auto`
 * falls back to ggml-cpu.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveStageRuntime } from "../span-runtime.js";
import { explainGpuLoadError, findGpuLib, gpuPackages, openGpuBackend, probeGpuBackend } from "./ggml-gpu.js";
import { ffi, findGgmlDir, libFile, loadGgml } from "./ggml-lib.js";

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
    expect(named).toMatchObject({ runtime: undefined, code: "unsupported_parameter", detail: `stage_backend = vulkan cannot run here: ${why}` });
  });
});
