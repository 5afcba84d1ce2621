export * from "./model-fit.js";
export * from "./inventory.js";
export * from "./served-models-file.js";
export * from "./model-operations.js";
export * from "./command-executor.js";
export * from "./model-path-file.js";
export * from "./how-to-add-model.js";
