import { describe, expect, it } from "vitest";
import { COMPLETION_DEFAULT_MAX_TOKENS, CompletionRequest, completionPrompts, completionSampling, unsupportedCompletionField } from "./completion.js";
import { CheckScore } from "./check.js";
import { CoordinatorMessage } from "./session.js";

const ok = { model: "m", prompt: "Once upon a time" };

function issuePath(body: unknown): string | undefined {
  const parsed = CompletionRequest.safeParse(body);
  return parsed.success ? undefined : parsed.error.issues[0]!.path.join(".");
}

describe("CompletionRequest", () => {
  it("fills OpenAI's defaults for this endpoint (16 tokens, temperature 1, top_p 1)", () => {
    const req = CompletionRequest.parse(ok);
    expect(completionSampling(req)).toEqual({ max_tokens: COMPLETION_DEFAULT_MAX_TOKENS, temperature: 1, top_p: 1 });
    expect(COMPLETION_DEFAULT_MAX_TOKENS).toBe(16);
    expect(completionPrompts(req)).toEqual(["Once upon a time"]);
    expect(completionPrompts(CompletionRequest.parse({ ...ok, prompt: ["a", "b"] }))).toEqual(["a", "b"]);
  });

  it("accepts what the openai client sends, nulls included", () => {
    expect(CompletionRequest.safeParse({ ...ok, max_tokens: 5, temperature: 0, top_p: 0.5, seed: 3, stop: ["\n"], n: 2, stream: true, stream_options: { include_usage: true } }).success).toBe(true);
    expect(CompletionRequest.safeParse({ ...ok, max_tokens: null, temperature: null, stop: null, n: null, stream: null }).success).toBe(true);
  });

  it("names the field of each bad value", () => {
    expect(issuePath({ prompt: "x" })).toBe("model");
    expect(issuePath({ model: "", prompt: "x" })).toBe("model");
    expect(issuePath({ model: "m" })).toBe("prompt");
    expect(issuePath({ ...ok, prompt: "" })).toBe("prompt");
    expect(issuePath({ ...ok, prompt: [] })).toBe("prompt");
    expect(issuePath({ ...ok, prompt: ["a", 3] })).toBe("prompt");
    expect(issuePath({ ...ok, prompt: Array(9).fill("a") })).toBe("prompt");
    expect(issuePath({ ...ok, prompt: { text: "a" } })).toBe("prompt");
    expect(issuePath({ ...ok, max_tokens: 0 })).toBe("max_tokens");
    expect(issuePath({ ...ok, max_tokens: 1.5 })).toBe("max_tokens");
    expect(issuePath({ ...ok, max_tokens: 1e9 })).toBe("max_tokens");
    expect(issuePath({ ...ok, temperature: 2.5 })).toBe("temperature");
    expect(issuePath({ ...ok, temperature: -1 })).toBe("temperature");
    expect(issuePath({ ...ok, top_p: 0 })).toBe("top_p");
    expect(issuePath({ ...ok, top_p: 1.1 })).toBe("top_p");
    expect(issuePath({ ...ok, seed: -1 })).toBe("seed");
    expect(issuePath({ ...ok, seed: "1" })).toBe("seed");
    expect(issuePath({ ...ok, stop: "" })).toBe("stop");
    expect(issuePath({ ...ok, stop: ["a", "b", "c", "d", "e"] })).toBe("stop");
    expect(issuePath({ ...ok, stop: 3 })).toBe("stop");
    expect(issuePath({ ...ok, n: 0 })).toBe("n");
    expect(issuePath({ ...ok, n: 9 })).toBe("n");
    expect(issuePath({ ...ok, prompt: ["a", "b", "c"], n: 3 })).toBe("n");
    expect(issuePath({ ...ok, stream: "yes" })).toBe("stream");
    expect(issuePath({ ...ok, stream_options: { include_usage: "yes" } })).toBe("stream_options.include_usage");
  });
});

describe("unsupportedCompletionField", () => {
  it("refuses what it would have to ignore, by name, and lets neutral defaults and ignorable fields through", () => {
    expect(unsupportedCompletionField({ ...ok, user: "u", echo: false, best_of: 1, suffix: "", logit_bias: {}, logprobs: null, frequency_penalty: 0 })).toBeUndefined();
    for (const [param, value] of [["suffix", "end"], ["echo", true], ["best_of", 2], ["logit_bias", { "50256": -100 }], ["presence_penalty", 0.5]] as const) {
      expect(unsupportedCompletionField({ ...ok, [param]: value })).toMatchObject({ param, code: "unsupported_parameter" });
    }
    expect(unsupportedCompletionField({ ...ok, messages: [] })).toMatchObject({ param: "messages", code: "bad_request", message: "unrecognized request argument: messages" });
    expect(unsupportedCompletionField({ ...ok, prompt: [1, 2, 3] })).toMatchObject({ param: "prompt", code: "unsupported_parameter" });
    expect(unsupportedCompletionField({ ...ok, prompt: [[1, 2]] })).toMatchObject({ param: "prompt" });
  });
});

describe("raw-prompt jobs on the wire", () => {
  it("carries raw_prompt on job.assign and check.score", () => {
    const assign = CoordinatorMessage.parse({
      type: "job.assign",
      job_id: "j",
      model: "m",
      messages: [{ role: "user", content: "Once" }],
      raw_prompt: true,
      sampling: { max_tokens: 4, temperature: 0, top_p: 1 },
    });
    expect(assign).toMatchObject({ raw_prompt: true });
    expect(CheckScore.parse({ type: "check.score", check_id: "c", model: "m", messages: [{ role: "user", content: "x" }], raw_prompt: true, output_tokens: [1] })).toMatchObject({ raw_prompt: true });
    expect(CheckScore.safeParse({ type: "check.score", check_id: "c", model: "m", messages: [{ role: "user", content: "x" }], raw_prompt: "yes", output_tokens: [1] }).success).toBe(false);
  });
});
