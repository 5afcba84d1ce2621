export * from "./model-fit.js";
export * from "./inventory.js";
export * from "./served-models-file.js";
export * from "./model-operations.js";
export * from "./command-executor.js";
