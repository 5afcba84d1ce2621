import { readFileSync, writeFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import { TesseraError } from "@tessera/protocol";

/**
 * Sets `model_path` in node.toml (the embedded engine's GGUF) and leaves every other line as the operator wrote it.
 * A live `model_path = …` line is replaced, else the commented default `tessera init` writes, else the key goes
 * before the first `[section]` (a key after a header would belong to that section). Parsed back before writing.
 */
export function writeModelPath(configFile: string, modelPath: string): void {
  const source = readFileSync(configFile, "utf8");
  const line = `model_path = ${JSON.stringify(modelPath)}`;
  const live = /^model_path\s*=.*$/m;
  const commented = /^#\s*model_path\s*=.*$/m;
  let next: string;
  if (live.test(source)) next = source.replace(live, () => line);
  else if (commented.test(source)) next = source.replace(commented, () => line);
  else {
    const section = /^\[/m.exec(source);
    next = section ? `${source.slice(0, section.index)}${line}\n\n${source.slice(section.index)}` : `${source.replace(/\n*$/, "\n")}${line}\n`;
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(next) as Record<string, unknown>;
  } catch (err) {
    throw new TesseraError("internal_error", `cannot set model_path in ${configFile}: ${(err as Error).message.split("\n")[0]}`);
  }
  if (parsed.model_path !== modelPath) throw new TesseraError("internal_error", `cannot set model_path in ${configFile}: edit it by hand`);
  writeFileSync(configFile, next);
}
