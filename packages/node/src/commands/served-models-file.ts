import { setTopLevelKey } from "../config-file-edit.js";

/** Rewrites `served_models` in node.toml (config-file-edit.ts), every other line as the operator wrote it. */
export function writeServedModels(configFile: string, models: readonly string[]): void {
  setTopLevelKey(configFile, "served_models", models);
}

/** The served_models list after adding or removing one model. An empty list means "everything the backend has". */
export function nextServedModels(current: readonly string[], change: { add?: string; remove?: string }): string[] | undefined {
  if (current.length === 0) return undefined; // "everything": an install or removal needs no edit
  let next = [...current];
  if (change.add !== undefined && !next.includes(change.add)) next.push(change.add);
  if (change.remove !== undefined) next = next.filter((m) => m !== change.remove);
  // Removing the last listed model must not turn the list into "everything".
  if (next.length === 0) return undefined;
  return next;
}
