import { readFileSync, writeFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import { TesseraError } from "@tessera/protocol";

/**
 * Sets one top-level key of node.toml and leaves every other line as the operator wrote it, comments included: a live
 * `key = …` line is replaced (an array over several lines too), else the commented default `tessera init` writes,
 * else the key goes before the first `[section]` (after a header it would belong to that section). The result is
 * parsed back and must hold exactly `value` before it is written, so a file this cannot edit safely is left untouched
 * and the caller gets `internal_error`. The one place the CLI and the daemon edit node.toml (served_models,
 * model_path, payout_address).
 */
export function setTopLevelKey(configFile: string, key: string, value: string | readonly string[]): void {
  const source = readFileSync(configFile, "utf8");
  const line = `${key} = ${typeof value === "string" ? JSON.stringify(value) : `[${value.map((v) => JSON.stringify(v)).join(", ")}]`}`;
  const live = new RegExp(`^${key}\\s*=\\s*(?:\\[[^\\]]*\\][ \\t]*(?:#.*)?|.*)$`, "m");
  const commented = new RegExp(`^#\\s*${key}\\s*=.*$`, "m");
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
    throw new TesseraError("internal_error", `cannot set ${key} in ${configFile}: ${(err as Error).message.split("\n")[0]}`);
  }
  const written = parsed[key];
  const same =
    typeof value === "string" ? written === value : Array.isArray(written) && written.length === value.length && written.every((v, i) => v === value[i]);
  if (!same) throw new TesseraError("internal_error", `cannot set ${key} in ${configFile}: edit it by hand`);
  if (next !== source) writeFileSync(configFile, next);
}
