import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "smol-toml";
import { parsePublicKey } from "@tessera/protocol";
import { NODE_SETTINGS } from "./config.js";
import { initNode } from "./init-node.js";
import { readKeyFile } from "./key-store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-init-"));
  dirs.push(dir);
  return dir;
}

describe("initNode", () => {
  it("writes keys and a commented node.toml, both mode 0600", () => {
    const home = join(tmp(), "node-a");
    const result = initNode({ home, env: {}, settings: { coordinator_url: "https://coord.example:7337/" } });
    expect(result.createdKeys && result.createdConfig).toBe(true);
    expect(statSync(join(home, "node.toml")).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "keys.toml")).mode & 0o777).toBe(0o600);
    const toml = readFileSync(join(home, "node.toml"), "utf8");
    expect(parse(toml)).toEqual({ coordinator_url: "https://coord.example:7337", idle: {}, limits: {} }); // the [idle] and [limits] headers are live, their keys commented
    for (const s of NODE_SETTINGS) {
      expect(toml).toContain(`${s.name} =`);
      expect(toml).toContain(s.env);
    }
    // Uncommenting a default line gives a valid file with that value.
    const uncommented = toml.replace("# max_concurrency = 4", "max_concurrency = 4").replace("# vllm_instances =", "vllm_instances =");
    expect(parse(uncommented)).toMatchObject({ max_concurrency: 4, vllm_instances: [{ host: "http://127.0.0.1:8001" }] });
    expect(result.config.coordinator_url).toBe("https://coord.example:7337");
    expect(existsSync(join(home, "logs"))).toBe(true);
  });

  it("shows the key as npub/nsec, and the npub is the node id", () => {
    const home = tmp();
    const result = initNode({ home, env: {} });
    const text = readFileSync(join(home, "keys.toml"), "utf8");
    expect(text).toMatch(/^npub = "npub1[0-9a-z]+"$/m);
    expect(text).toMatch(/^nsec = "nsec1[0-9a-z]+"$/m);
    expect(parsePublicKey(result.npub)).toBe(result.nodeId);
    expect(readKeyFile(join(home, "keys.toml")).publicKeyHex).toBe(result.nodeId);
  });

  it("is idempotent: a second init keeps the identity and the user's edits", () => {
    const home = tmp();
    const first = initNode({ home, env: {} });
    writeFileSync(join(home, "node.toml"), 'coordinator_url = "http://edited:1"\n');
    const second = initNode({ home, env: {}, settings: { coordinator_url: "http://other:2" } });
    expect(second.nodeId).toBe(first.nodeId);
    expect(second.createdKeys || second.createdConfig).toBe(false);
    expect(readFileSync(join(home, "node.toml"), "utf8")).toBe('coordinator_url = "http://edited:1"\n');
  });

  it("writes nothing when a setting is invalid", () => {
    const home = join(tmp(), "fresh");
    expect(() => initNode({ home, env: {}, settings: { coordinator_url: "not a url" } })).toThrow(
      expect.objectContaining({ code: "bad_request", message: expect.stringContaining("--coordinator") }),
    );
    expect(existsSync(home)).toBe(false);
  });

  it("refuses a key file whose npub does not match its nsec", () => {
    const home = tmp();
    initNode({ home, env: {} });
    const other = tmp();
    initNode({ home: other, env: {} });
    const mine = readFileSync(join(home, "keys.toml"), "utf8");
    const theirs = readFileSync(join(other, "keys.toml"), "utf8");
    const theirNpub = /^npub = .*$/m.exec(theirs)![0];
    writeFileSync(join(home, "keys.toml"), mine.replace(/^npub = .*$/m, theirNpub));
    expect(() => readKeyFile(join(home, "keys.toml"))).toThrow(/npub does not match nsec/);
  });
});
