export * from "./command-runner.js";
export * from "./parse-nvidia-smi.js";
export * from "./parse-rocm-smi.js";
export * from "./parse-apple.js";
export * from "./detect-hardware.js";
