import { describe, expect, it } from "vitest";
import { ChatCompletionRequest, ERROR_CODES, JobCreateRequest, NODE_MODEL_ID_PATTERN, NodeMessage, TesseraError, errorBody, modelIdFromFileName } from "../src/index.js";

describe("wire schemas", () => {
  it("fills the documented job defaults and normalises OpenAI content parts", () => {
    const job = JobCreateRequest.parse({ model: "m", messages: [{ role: "developer", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }] });
    expect(job).toMatchObject({ max_tokens: 512, temperature: 0.7, top_p: 1, stream: false, messages: [{ role: "system", content: "ab" }] });
  });

  it("accepts unknown OpenAI fields but validates the honoured ones", () => {
    expect(ChatCompletionRequest.safeParse({ model: "m", messages: [{ role: "user", content: "x" }], logit_bias: {} }).success).toBe(true);
    expect(ChatCompletionRequest.safeParse({ model: "m", messages: [{ role: "user", content: "x" }], n: 9 }).success).toBe(false);
    expect(ChatCompletionRequest.safeParse({ model: "m", messages: [{ role: "user", content: "x" }], n: 3 }).success).toBe(true);
  });

  it("rejects node messages with a bad discriminant or part", () => {
    expect(NodeMessage.safeParse({ type: "job.part", job_id: "j", part: { type: "text-delta", text: 1 } }).success).toBe(false);
    expect(NodeMessage.safeParse({ type: "hello" }).success).toBe(false);
    expect(NodeMessage.safeParse({ type: "job.part", job_id: "j", part: { type: "text-delta", text: "a", tokens: [1, 2] } }).success).toBe(true);
  });

  it("defines each error code once with its status and retryability", () => {
    expect(ERROR_CODES.no_capacity).toEqual({ status: 503, retryable: true });
    expect(ERROR_CODES.unauthorized).toEqual({ status: 401, retryable: false });
    const err = new TesseraError("rate_limited", "slow down", { retryAfterSeconds: 3 });
    expect(err).toMatchObject({ status: 429, retryable: true, retryAfterSeconds: 3 });
    expect(err.toBody()).toEqual(errorBody("rate_limited", "slow down"));
  });
});

describe("modelIdFromFileName", () => {
  it.each([
    ["tessera-demo", "tessera-demo"],
    ["My Model (v2)", "My-Model-v2"],
    ["Llama-3.1-8B-Instruct-Q4_K_M", "Llama-3.1-8B-Instruct-Q4_K_M"],
    ["  _leading", "leading"],
    ["模型", "model"],
    ["x".repeat(300), "x".repeat(128)],
  ])("%s → %s, an id coordinators accept", (stem, id) => {
    expect(modelIdFromFileName(stem)).toBe(id);
    expect(NODE_MODEL_ID_PATTERN.test(modelIdFromFileName(stem))).toBe(true);
  });
});
