import { setTopLevelKey } from "../config-file-edit.js";

/** Sets `model_path` in node.toml (the embedded engine's GGUF), every other line as the operator wrote it. */
export function writeModelPath(configFile: string, modelPath: string): void {
  setTopLevelKey(configFile, "model_path", modelPath);
}
