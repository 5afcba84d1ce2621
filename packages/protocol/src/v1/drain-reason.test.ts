import { describe, expect, it } from "vitest";
import { DRAIN_REASONS, drainReasonOf } from "./drain-reason.js";
import { NodeMessage } from "./session.js";

describe("a node's drain reason", () => {
  it("keeps a known reason and turns anything else into unspecified", () => {
    for (const reason of DRAIN_REASONS) expect(drainReasonOf(reason)).toBe(reason);
    for (const bad of [undefined, null, 3, {}, ["owner_active"], "", "OWNER_ACTIVE", "owner_active ", "alice's laptop in Paris", "x".repeat(10_000)]) {
      expect(drainReasonOf(bad)).toBe("unspecified");
    }
  });

  it("never makes a draining message invalid: an older node's (none) and an unknown or malformed one still drain", () => {
    const parse = (message: unknown) => NodeMessage.parse(message);
    expect(parse({ type: "draining" })).toEqual({ type: "draining" });
    expect(parse({ type: "draining", reason: "on_battery" })).toEqual({ type: "draining", reason: "on_battery" });
    expect(drainReasonOf((parse({ type: "draining", reason: "some-future-reason" }) as { reason?: string }).reason)).toBe("unspecified");
    expect(parse({ type: "draining", reason: 42 })).toEqual({ type: "draining" });
    expect(parse({ type: "draining", reason: "y".repeat(65) })).toEqual({ type: "draining" });
  });
});
