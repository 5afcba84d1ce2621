import { describe, expect, it } from "vitest";
import { resultCommitment, resultCommitmentBytes, type ResultCommitmentInput } from "./result-commitment.js";

const base: ResultCommitmentInput = {
  outputTokens: [450, 4996, 17354],
  finishReason: "length",
  logprobs: [
    { token: 450, logprob: -0.25, top: [{ token: 450, logprob: -0.25 }, { token: 9, logprob: -1.5 }] },
    { token: 4996, logprob: -0.5, top: [{ token: 4996, logprob: -0.5 }] },
    { token: 17354, logprob: -0.125, top: [{ token: 17354, logprob: -0.125 }] },
  ],
  modelSha256: "ab".repeat(32),
  sampling: { temperature: 0, topP: 1 },
  seed: 42,
};

describe("result commitment", () => {
  it("is the same digest for the same result, whatever order the caller built the object in", () => {
    const reordered: ResultCommitmentInput = { seed: 42, sampling: { topP: 1, temperature: 0 }, modelSha256: base.modelSha256, logprobs: base.logprobs, finishReason: "length", outputTokens: [450, 4996, 17354] };
    expect(resultCommitment(reordered)).toBe(resultCommitment(base));
    expect(resultCommitment(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("changes when any carried field changes", () => {
    const digest = resultCommitment(base);
    const variants: ResultCommitmentInput[] = [
      { ...base, outputTokens: [450, 4996, 17355] },
      { ...base, finishReason: "stop" },
      { ...base, logprobs: base.logprobs.map((l, i) => (i === 1 ? { ...l, logprob: -0.5000001 } : l)) },
      { ...base, modelSha256: "ac".repeat(32) },
      { ...base, sampling: { temperature: 0.7, topP: 1 } },
      { ...base, seed: 43 },
    ];
    for (const v of variants) expect(resultCommitment(v)).not.toBe(digest);
  });

  it("refuses a malformed model hash or logprobs that do not match the tokens", () => {
    expect(() => resultCommitmentBytes({ ...base, modelSha256: "AB".repeat(32) })).toThrow(RangeError);
    expect(() => resultCommitmentBytes({ ...base, logprobs: base.logprobs.slice(1) })).toThrow(RangeError);
    expect(resultCommitmentBytes({ ...base, logprobs: [] }).length).toBeGreaterThan(0);
  });
});
