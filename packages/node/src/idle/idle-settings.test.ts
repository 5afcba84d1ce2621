import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { loadNodeConfig } from "../config.js";
import { renderNodeToml } from "../config-file.js";
import { storePayoutAddress } from "../payout-address.js";

const ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7";

function home(toml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-idle-settings-"));
  writeFileSync(join(dir, "node.toml"), toml);
  return dir;
}

describe("[idle] and [limits] settings", () => {
  it("defaults, then node.toml, then env, then flags", () => {
    const defaults = loadNodeConfig({ home: home(""), env: {} });
    expect(defaults.idle).toMatchObject({ mode: "when-idle", enlist_after_ms: 90_000, release_on_use: true, gpu_util_floor: 0.05, input_idle_threshold_ms: 5_000, drain_grace_ms: 500, unknown_means_idle: true });
    expect(defaults.limits).toEqual({ max_vram_fraction: 0.8, max_power_watts: 0, pause_on_battery: true });
    const dir = home('[idle]\nenlist_after = "2m"\ndrain_grace = "500ms"\n[limits]\nmax_vram_fraction = 0.5\npause_on_battery = false\n');
    const file = loadNodeConfig({ home: dir, env: {} });
    expect(file.idle.enlist_after_ms).toBe(120_000);
    expect(file.idle.drain_grace_ms).toBe(500);
    expect(file.limits).toMatchObject({ max_vram_fraction: 0.5, pause_on_battery: false });
    const env = loadNodeConfig({ home: dir, env: { TESSERA_IDLE_AFTER: "30s", TESSERA_MAX_VRAM_FRACTION: "0.6" } });
    expect([env.idle.enlist_after_ms, env.limits.max_vram_fraction]).toEqual([30_000, 0.6]);
    const flags = loadNodeConfig({ home: dir, env: { TESSERA_IDLE_AFTER: "30s" }, flags: { "idle.enlist_after": "90s", "limits.max_vram_fraction": "0.8" } });
    expect([flags.idle.enlist_after_ms, flags.limits.max_vram_fraction]).toEqual([90_000, 0.8]);
    expect(flags.sectionSources["idle.enlist_after"]).toBe("flag");
  });

  it.each([
    ['[idle]\nenlist_after = "soon"\n', /invalid idle.enlist_after "soon" \(from \[idle\] enlist_after in node.toml\): must be a duration like 90s.*--idle-after, TESSERA_IDLE_AFTER/],
    ["[limits]\nmax_vram_fraction = 0\n", /invalid limits.max_vram_fraction 0 .*more than 0/],
    ["[limits]\nmax_power_watts = 12.5\n", /whole number of watts/],
    ['[idle]\nrelease_on_use = "maybe"\n', /must be true or false/],
    ["[idle]\nenlist = 3\n", /unknown key "enlist" in \[idle\].*known keys: mode, enlist_after/],
    ['idle = "90s"\n', /\[idle\] in .* must be a table/],
    ['payout_address = "0x1234"\n', /invalid payout_address "0x1234" .*EVM address/],
  ])("refuses %j clearly", (toml, message) => {
    expect(() => loadNodeConfig({ home: home(toml), env: {} })).toThrow(message);
  });

  it("a flag error names the flag", () => {
    expect(() => loadNodeConfig({ home: home(""), env: {}, flags: { "limits.max_vram_fraction": "1.5" } })).toThrow(/from flag --max-vram/);
  });

  it("tessera init's node.toml documents both sections and parses to the defaults", () => {
    const toml = renderNodeToml({ coordinator_url: "http://127.0.0.1:7337" }, "/x/node.log");
    expect(toml).toMatch(/\[idle\][\s\S]*# enlist_after = "90s"[\s\S]*\[limits\][\s\S]*# max_vram_fraction = 0.8/);
    expect(parseToml(toml)).toMatchObject({ idle: {}, limits: {} });
  });

  it("--payout is stored in node.toml above the sections, replacing the commented default, and read back", () => {
    const dir = home(renderNodeToml({ coordinator_url: "http://127.0.0.1:7337" }, "/x/node.log"));
    storePayoutAddress(join(dir, "node.toml"), ADDRESS);
    const text = readFileSync(join(dir, "node.toml"), "utf8");
    expect(text.indexOf(`payout_address = "${ADDRESS}"`)).toBeLessThan(text.indexOf("[idle]"));
    expect(loadNodeConfig({ home: dir, env: {} }).payout_address).toBe(ADDRESS);
    const sectioned = home('coordinator_url = "http://127.0.0.1:7337"\n[idle]\nenlist_after = "2m"\n');
    storePayoutAddress(join(sectioned, "node.toml"), ADDRESS);
    const config = loadNodeConfig({ home: sectioned, env: {} });
    expect([config.payout_address, config.idle.enlist_after_ms]).toEqual([ADDRESS, 120_000]);
  });
});
