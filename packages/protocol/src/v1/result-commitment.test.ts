import { describe, expect, it } from "vitest";
import { generateKeyPair, secretKeySigner } from "../index.js";
import { type ResultCommitmentInput, resultCommitment, resultCommitmentBytes, signResultCommitment, verifyResultCommitment } from "./result-commitment.js";

const node = secretKeySigner(generateKeyPair().secretKeyHex);
const input: ResultCommitmentInput = {
  jobId: "job-1",
  modelSha256: "ab".repeat(32),
  sampling: { temperature: 0, top_p: 1, max_tokens: 16, seed: 42 },
  finishReason: "stop",
  outputTokens: [5, 9, 11],
  logprobs: [-0.5, -1.25, -0.0625],
};

describe("result commitments", () => {
  it("are one fixed byte string per result, signed by the node and verified against what was relayed", () => {
    expect(new TextDecoder().decode(resultCommitmentBytes(input))).toBe(
      `["tessera-result-v1","job-1","${"ab".repeat(32)}",[0,1,16,42],"stop",[5,9,11],[-0.5,-1.25,-0.0625]]`,
    );
    expect(resultCommitment(input)).toMatch(/^[0-9a-f]{64}$/);
    const signature = signResultCommitment(node, input);
    expect(verifyResultCommitment(signature, input, node.publicKeyHex)).toBe(true);
  });

  it.each<[string, Partial<ResultCommitmentInput>]>([
    ["another job", { jobId: "job-2" }],
    ["one token changed", { outputTokens: [5, 9, 12] }],
    ["a token dropped", { outputTokens: [5, 9], logprobs: [-0.5, -1.25] }],
    ["another seed", { sampling: { ...input.sampling, seed: 43 } }],
    ["another finish reason", { finishReason: "length" }],
    ["another model file", { modelSha256: "cd".repeat(32) }],
    ["no model file", { modelSha256: null }],
  ])("does not verify for %s", (_name, change) => {
    const signature = signResultCommitment(node, input);
    expect(verifyResultCommitment(signature, { ...input, ...change }, node.publicKeyHex)).toBe(false);
  });

  it("does not verify under another key or with a malformed signature, and never throws", () => {
    const signature = signResultCommitment(node, input);
    expect(verifyResultCommitment(signature, input, generateKeyPair().publicKeyHex)).toBe(false);
    expect(verifyResultCommitment("zz", input, node.publicKeyHex)).toBe(false);
    expect(verifyResultCommitment(signature, { ...input, logprobs: [-1] }, node.publicKeyHex)).toBe(false);
  });

  it("refuses inputs that have no canonical form", () => {
    expect(() => resultCommitmentBytes({ ...input, modelSha256: "AB".repeat(32) })).toThrow(RangeError);
    expect(() => resultCommitmentBytes({ ...input, logprobs: [-1] })).toThrow(/log-probabilities/);
    expect(() => resultCommitmentBytes({ ...input, outputTokens: [1.5, 2, 3] })).toThrow(/integer/);
    expect(() => resultCommitmentBytes({ ...input, logprobs: [Number.NaN, 0, 0] })).toThrow(/finite/);
  });
});
