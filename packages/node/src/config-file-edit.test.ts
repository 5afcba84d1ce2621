import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { setTopLevelKey } from "./config-file-edit.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
function file(text: string): string {
  dir = mkdtempSync(join(tmpdir(), "tessera-toml-"));
  const path = join(dir, "node.toml");
  writeFileSync(path, text);
  return path;
}

describe("setTopLevelKey: one key of node.toml, every other line as the operator wrote it", () => {
  it("replaces a live line, keeping comments and sections", () => {
    const path = file('# mine\nmodel_path = "/old.gguf" # note\n\n[idle]\nenlist_after = "2m"\n');
    setTopLevelKey(path, "model_path", "/new.gguf");
    expect(readFileSync(path, "utf8")).toBe('# mine\nmodel_path = "/new.gguf"\n\n[idle]\nenlist_after = "2m"\n');
  });

  it("replaces the commented default tessera init writes, or goes before the first section", () => {
    const commented = file('# payout_address = "0x…"\n[limits]\n');
    setTopLevelKey(commented, "payout_address", "0xabc");
    expect(readFileSync(commented, "utf8")).toBe('payout_address = "0xabc"\n[limits]\n');
    const absent = file('coordinator_url = "http://x"\n\n[idle]\nmode = "always"\n');
    setTopLevelKey(absent, "served_models", ["a", "b"]);
    expect(readFileSync(absent, "utf8")).toBe('coordinator_url = "http://x"\n\nserved_models = ["a", "b"]\n\n[idle]\nmode = "always"\n');
  });

  it("replaces an array written over several lines, and takes values with $ in them literally", () => {
    const path = file('served_models = [\n  "a",\n  "b",\n]\nlog_level = "info"\n');
    setTopLevelKey(path, "served_models", ["c$&"]);
    expect(readFileSync(path, "utf8")).toBe('served_models = ["c$&"]\nlog_level = "info"\n');
  });

  it("leaves a file it cannot edit safely untouched, with internal_error", () => {
    // The only `model_path = …` line is text inside a multi-line string: replacing it would set nothing.
    const broken = 'note = """\nmodel_path = "/a.gguf"\n"""\n';
    const path = file(broken);
    expect(() => setTopLevelKey(path, "model_path", "/x.gguf")).toThrow(expect.objectContaining({ code: "internal_error" }));
    expect(readFileSync(path, "utf8")).toBe(broken);
  });
});
