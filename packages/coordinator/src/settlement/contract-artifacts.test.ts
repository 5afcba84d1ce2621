import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ARTIFACTS_FILE, compileContracts, renderArtifacts } from "../../scripts/compile-contracts.js";

describe("contract artifacts", () => {
  it("are exactly what the committed .sol sources compile to (edit both or neither)", () => {
    const fresh = renderArtifacts(compileContracts());
    expect(readFileSync(ARTIFACTS_FILE, "utf8") === fresh, "contract-artifacts.ts is stale: run node --import tsx packages/coordinator/scripts/compile-contracts.ts").toBe(true);
  });
});
