import { describe, expect, it } from "vitest";
import type { ServedModel } from "@tessera/protocol";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import { type DeliveredAnswer, fileMatch, SpotChecks, type SpotChecksDeps } from "./spot-checks.js";

/**
 * Which reference checks an answer, by model file (trust/design.md "Spot checks", Who): a reference holding another
 * file than the checked node is refused while one with the same or an unknown file exists; where neither reports a
 * file, the model name and prompt rendering decide as before.
 */
const quiet = { info() {}, warn() {}, debug() {}, error() {} } as unknown as Logger;
const FILE_A = "a".repeat(64);
const FILE_B = "b".repeat(64);

interface Member { id: string; sha256?: string; scoring?: boolean }

function setup(checked: Member, refs: Member[]) {
  const nodes = new Map<string, { id: string; operatorId: string; online: boolean; draining: boolean; models: ServedModel[] }>();
  for (const m of [checked, ...refs]) {
    const model: ServedModel = { id: "tiny", backend: "embedded", ...(m.scoring !== false ? { scoring: true } : {}), ...(m.sha256 ? { sha256: m.sha256 } : {}) };
    nodes.set(m.id, { id: m.id, operatorId: `op-${m.id}`, online: true, draining: false, models: [model] });
  }
  const sent: string[] = [];
  let r = 0;
  const deps: SpotChecksDeps = {
    registry: { get: (id: string) => nodes.get(id), all: () => nodes.values() } as unknown as NodeRegistry,
    messenger: { send: (id) => void sent.push(id) as unknown as boolean, reachable: () => true },
    standing: { checkRate: () => 1, recordCheck() {}, isQuarantined: () => false, tier: () => "normal" },
    clock: { now: () => 0 } as SpotChecksDeps["clock"],
    logger: quiet,
    // Draws spread evenly over [0, 1): every candidate reference gets picked across the jobs below.
    random: () => ((r = (r + 0.137) % 1), r),
    namedReferences: new Set(refs.map((m) => m.id)),
    rateOverride: 1,
    timeoutMs: 60_000,
  };
  const checks = new SpotChecks(deps);
  const deliver = (n = 40) => {
    for (let i = 0; i < n; i++) checks.afterDelivery(answer(`job-${i}`, checked.id));
    return new Set(sent);
  };
  return { checks, deliver };
}

function answer(jobId: string, nodeId: string): DeliveredAnswer {
  return {
    jobId,
    nodeId,
    model: "tiny",
    messages: [{ role: "user", content: "hi" }],
    sampling: { temperature: 0, top_p: 1, max_tokens: 8 } as DeliveredAnswer["sampling"],
    outputTokens: [11, 12, 13],
    finishReason: "stop",
    claimedUsage: undefined,
  };
}

describe("fileMatch", () => {
  it("is same, other or unknown", () => {
    expect(fileMatch(FILE_A, FILE_A)).toBe("same");
    expect(fileMatch(FILE_A, FILE_B)).toBe("other");
    expect(fileMatch(FILE_A, undefined)).toBe("unknown");
    expect(fileMatch(undefined, FILE_B)).toBe("unknown");
    expect(fileMatch(undefined, undefined)).toBe("unknown");
  });
});

describe("spot-check references by model file", () => {
  it("refuses a reference holding another file when one holds the node's file", () => {
    const { deliver } = setup({ id: "checked", sha256: FILE_A }, [{ id: "same", sha256: FILE_A }, { id: "other", sha256: FILE_B }]);
    expect(deliver()).toEqual(new Set(["same"]));
  });

  it("refuses a reference holding another file when one reports no file (today's rule: name and rendering)", () => {
    const { deliver } = setup({ id: "checked", sha256: FILE_A }, [{ id: "unknown" }, { id: "other", sha256: FILE_B }]);
    expect(deliver()).toEqual(new Set(["unknown"]));
  });

  it("prefers the same file over an unknown one", () => {
    const { deliver } = setup({ id: "checked", sha256: FILE_A }, [{ id: "same", sha256: FILE_A }, { id: "unknown" }]);
    expect(deliver()).toEqual(new Set(["same"]));
  });

  it("a node that reports no file is checked by any reference of the model, as before files were reported", () => {
    const { deliver } = setup({ id: "checked" }, [{ id: "a", sha256: FILE_A }, { id: "b", sha256: FILE_B }, { id: "none" }]);
    expect(deliver()).toEqual(new Set(["a", "b", "none"]));
  });

  it("a node naming a file no reference holds is still checked, by the name's references (no escape by naming a hash)", () => {
    const { checks, deliver } = setup({ id: "checked", sha256: FILE_B }, [{ id: "a1", sha256: FILE_A }, { id: "a2", sha256: FILE_A }]);
    expect(checks.hasReferenceFor("checked", "tiny")).toBe(true);
    expect(deliver()).toEqual(new Set(["a1", "a2"]));
  });

  it("a reference that cannot score is never a candidate, whatever its file", () => {
    const { checks, deliver } = setup({ id: "checked", sha256: FILE_A }, [{ id: "same", sha256: FILE_A, scoring: false }, { id: "other", sha256: FILE_B }]);
    expect(checks.hasReferenceFor("checked", "tiny")).toBe(true);
    expect(deliver()).toEqual(new Set(["other"]));
  });
});
