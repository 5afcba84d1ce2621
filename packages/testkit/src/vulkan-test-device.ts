import { resolveStageRuntime } from "@tessera/node";

/**
 * Where the tests that run spans on a real Vulkan device find one, or why they cannot: node-llama-cpp's Vulkan build in
 * the prefix `TESSERA_TEST_GPU_RUNTIME_DIR` names (a `tessera gpu setup --build vulkan` prefix; tests download nothing)
 * and a Vulkan device it initialises. With no GPU that is Mesa's software device (lavapipe, `mesa-vulkan-drivers`),
 * which ggml takes only when `GGML_VK_VISIBLE_DEVICES` names it: this sets it to device 0 unless it is set, in this
 * process's environment (so call it before any Vulkan library loads) and for the daemons a test starts with
 * `vulkanTestEnv`. Under CI=true a test with no device fails (`.ci/run` installs both), elsewhere it is skipped and
 * says why.
 */
export type VulkanTestDevice = { runtimeDir: string; detail: string; skip?: undefined } | { skip: string };

export const VULKAN_TEST_DEVICES = "0";

export function vulkanTestDevice(testFile: string): VulkanTestDevice {
  process.env.GGML_VK_VISIBLE_DEVICES ??= VULKAN_TEST_DEVICES;
  const runtimeDir = process.env.TESSERA_TEST_GPU_RUNTIME_DIR;
  const choice = runtimeDir === undefined ? undefined : resolveStageRuntime("vulkan", undefined, { gpuRuntimeDir: runtimeDir });
  const skip =
    process.platform !== "linux" || process.arch !== "x64" ? "node-llama-cpp's Vulkan build these tests use is linux-x64's"
    : runtimeDir === undefined ? "TESSERA_TEST_GPU_RUNTIME_DIR is not set (a `tessera gpu setup --build vulkan` prefix)"
    : choice?.runtime !== "vulkan" ? (choice?.detail ?? "no Vulkan device")
    : undefined;
  if (skip === undefined) return { runtimeDir: runtimeDir!, detail: choice!.detail };
  // Test-only read of the environment: on CI the Vulkan device tests are mandatory.
  if (process.env.CI === "true") throw new Error(`${testFile} is mandatory under CI=true: ${skip}`);
  process.stderr.write(`\n*** ${testFile} SKIPPED: ${skip} ***\n\n`);
  return { skip };
}

/** The environment a daemon needs to run spans on the device `vulkanTestDevice` found. */
export function vulkanTestEnv(): NodeJS.ProcessEnv {
  return { GGML_VK_VISIBLE_DEVICES: process.env.GGML_VK_VISIBLE_DEVICES ?? VULKAN_TEST_DEVICES };
}
