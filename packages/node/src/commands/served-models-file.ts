import { readFileSync, writeFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import { TesseraError } from "@tessera/protocol";

/**
 * Rewrites `served_models` in node.toml and leaves every other line as the operator wrote it (comments included).
 * A live `served_models = [...]` (one line or several) is replaced; otherwise the commented default line that
 * `tessera init` writes is replaced, or the key is appended. The result is parsed back before it is written, so a
 * file this cannot edit safely is left untouched and the caller gets `internal_error`.
 */
export function writeServedModels(configFile: string, models: readonly string[]): void {
  const source = readFileSync(configFile, "utf8");
  const line = `served_models = [${models.map((m) => JSON.stringify(m)).join(", ")}]`;
  let next: string;
  const live = /^served_models\s*=\s*\[[^\]]*\][ \t]*(#.*)?$/m;
  const commented = /^#\s*served_models\s*=.*$/m;
  if (live.test(source)) next = source.replace(live, line);
  else if (commented.test(source)) next = source.replace(commented, line);
  else next = `${source.replace(/\n*$/, "\n")}${line}\n`;
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(next) as Record<string, unknown>;
  } catch (err) {
    throw new TesseraError("internal_error", `cannot update served_models in ${configFile}: ${(err as Error).message.split("\n")[0]}`);
  }
  const written = parsed.served_models;
  if (!Array.isArray(written) || written.length !== models.length || written.some((m, i) => m !== models[i])) {
    throw new TesseraError("internal_error", `cannot update served_models in ${configFile}: edit it by hand`);
  }
  writeFileSync(configFile, next);
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
