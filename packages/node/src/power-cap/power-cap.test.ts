import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { CommandResult } from "../hardware/command-runner.js";
import { applyPowerCap, parsePowerLimits } from "./power-cap.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const answering = (result: CommandResult) => {
  const calls: string[] = [];
  return { calls, run: async (c: string, a: readonly string[]) => (calls.push([c, ...a].join(" ")), result) };
};

describe("max_power_watts through nvidia-smi -pl (recorded outputs)", () => {
  it("applied: says each GPU's old and new limit", async () => {
    const r = answering({ code: 0, stdout: fixture("nvidia-smi-pl-set.txt") });
    expect(await applyPowerCap(r.run, 300)).toEqual({ applied: true, detail: "GPU power cap 300 W applied with nvidia-smi -pl (450 → 300 W, 450 → 300 W)" });
    expect(r.calls).toEqual(["nvidia-smi -pl 300"]);
  });

  it.each([
    ["not root", { code: 4, stdout: fixture("nvidia-smi-pl-no-permission.txt") }, "setting a power limit needs root"],
    ["a board that refuses", { code: 0, stdout: fixture("nvidia-smi-pl-not-supported.txt") }, "this GPU or driver does not allow changing its power limit"],
    ["out of the board's range", { code: 2, stdout: fixture("nvidia-smi-pl-out-of-range.txt") }, "not a valid power limit which should be between 150.00 W and 450.00 W"],
  ])("not applied when %s: a warning with the reason and the command to run as root", async (_name, result, reason) => {
    const outcome = await applyPowerCap(answering(result).run, 100);
    expect(outcome).toEqual({ applied: false, detail: `max_power_watts = 100 not applied: ${reason}; apply it as root with \`sudo nvidia-smi -pl 100\` (it lasts until reboot)` });
  });

  it("no nvidia-smi: nothing to apply it with", async () => {
    expect(await applyPowerCap(answering({ code: 127, stdout: "" }).run, 250)).toEqual({ applied: false, detail: "max_power_watts = 250 is set but nvidia-smi is not installed: no power cap applied" });
  });

  it("parses the limits in force", () => {
    expect(parsePowerLimits(fixture("nvidia-smi-power-limits.csv"))).toEqual([{ limit: 300, min: 150, max: 450 }, { limit: 450, min: 150, max: 450 }]);
    expect(parsePowerLimits(fixture("nvidia-smi-power-limits-na.csv"))[0]!.limit).toBeNaN();
  });
});
