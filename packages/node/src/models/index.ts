export * from "./quantization.js";
export * from "./parameter-count.js";
export * from "./estimate-vram.js";
export * from "./vram-tiers.js";
