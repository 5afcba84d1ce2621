import { describe, expect, it } from "vitest";
import { nodeTestHooks } from "./config.js";

describe("test-only settings", () => {
  it("TESSERA_TEST_STAGE_PERTURB: unset is honest, a number perturbs, anything else is refused naming the variable", () => {
    expect(nodeTestHooks({})).toEqual({ stagePerturb: 0 });
    expect(nodeTestHooks({ TESSERA_TEST_STAGE_PERTURB: "0.5" })).toEqual({ stagePerturb: 0.5 });
    expect(() => nodeTestHooks({ TESSERA_TEST_STAGE_PERTURB: "lots" })).toThrow(/invalid TESSERA_TEST_STAGE_PERTURB "lots" \(from env\): must be a number >= 0 \(tests only\)/);
    expect(() => nodeTestHooks({ TESSERA_TEST_STAGE_PERTURB: "-1" })).toThrow(/TESSERA_TEST_STAGE_PERTURB/);
  });
});
