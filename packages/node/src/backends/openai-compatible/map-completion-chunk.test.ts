import { describe, expect, it } from "vitest";
import { mapChunk } from "./map-chunk.js";
import { mapCompletionChunk } from "./map-completion-chunk.js";
import { completionBody } from "./completion-body.js";

describe("completion logprobs from OpenAI-compatible servers", () => {
  it("reads the legacy shape (vLLM, SGLang): tokens, their log-probabilities and alternatives, best first", () => {
    const c = mapCompletionChunk({
      choices: [{ text: " a b", logprobs: { tokens: [" a", " b"], token_logprobs: [-0.5, -1], top_logprobs: [{ " c": -2, " a": -0.5 }, { " b": -1 }], text_offset: [4, 6] } }],
    });
    expect(c.logprobs).toEqual([-0.5, -1]);
    expect(c.tokenLogprobs).toEqual([
      { token: " a", logprob: -0.5, top_logprobs: [{ token: " a", logprob: -0.5 }, { token: " c", logprob: -2 }] },
      { token: " b", logprob: -1, top_logprobs: [{ token: " b", logprob: -1 }] },
    ]);
  });

  it("reads llama-server's content entries, with ids", () => {
    const c = mapCompletionChunk({ choices: [{ text: "hi", logprobs: { content: [{ id: 7, token: "hi", logprob: -0.1, top_logprobs: [{ token: "hi", logprob: -0.1 }] }] } }] });
    expect(c.tokens).toEqual([7]);
    expect(c.tokenLogprobs).toEqual([{ token: "hi", logprob: -0.1, top_logprobs: [{ token: "hi", logprob: -0.1 }] }]);
  });

  it("relays no ids for a chunk that holds a token llama-server left out (a token ending mid-character)", () => {
    // Real llama-server: a lone byte token (0xE2) is held back, then sent in front of the next token's text, with that
    // token's entry only; its own candidate shows the piece it really is.
    const merged = { id: 20760, token: "\uFFFD aplic", bytes: [0xe2, 0x20, 0x61, 0x70, 0x6c, 0x69, 0x63], logprob: -0.2, top_logprobs: [{ id: 20760, token: " aplic", bytes: [0x20, 0x61, 0x70, 0x6c, 0x69, 0x63], logprob: -0.2 }] };
    const c = mapCompletionChunk({ choices: [{ text: "\uFFFD aplic", logprobs: { content: [merged] } }] });
    expect(c.tokens).toBeUndefined();
    expect(c.logprobs).toEqual([-0.2]);
    // "é" as two byte tokens: only the second's entry arrives, its candidate piece is one byte.
    const e2 = { id: 170, token: "é", bytes: [0xc3, 0xa9], logprob: -1, top_logprobs: [{ id: 170, token: "", bytes: [0xa9], logprob: -1 }] };
    expect(mapChunk({ choices: [{ delta: { content: "é" }, logprobs: { content: [e2] } }] }).tokens).toBeUndefined();
    // "é" as one token, and ASCII text, keep their ids.
    const e1 = { id: 1234, token: "é", bytes: [0xc3, 0xa9], logprob: -1, top_logprobs: [{ id: 1234, token: "é", bytes: [0xc3, 0xa9], logprob: -1 }] };
    expect(mapChunk({ choices: [{ delta: { content: "é" }, logprobs: { content: [e1] } }] }).tokens).toEqual([1234]);
    expect(mapChunk({ choices: [{ delta: { content: " a b" }, logprobs: { content: [{ id: 1, token: " a", logprob: -1 }, { id: 2, token: " b", logprob: -1 }] } }] }).tokens).toEqual([1, 2]);
  });

  it("takes nothing from a lying or broken shape: lists of different lengths, a token that is not text, a NaN", () => {
    for (const logprobs of [
      { tokens: [" a", " b"], token_logprobs: [-0.5] },
      { tokens: [1], token_logprobs: [-0.5] },
      { tokens: [" a"], token_logprobs: ["x"] },
    ]) {
      expect(mapCompletionChunk({ choices: [{ text: " a", logprobs }] }).tokenLogprobs).toBeUndefined();
    }
    // Values out of range are clamped to a log-probability.
    expect(mapCompletionChunk({ choices: [{ text: " a", logprobs: { tokens: [" a"], token_logprobs: [3] } }] }).tokenLogprobs?.[0]!.logprob).toBe(0);
  });

  it("asks the server for as many alternatives as the job did, else for 1 (the tokens' own, for verification)", () => {
    const base = { model: "m", messages: [{ role: "user" as const, content: "p" }], rawPrompt: true };
    expect(completionBody({ ...base, sampling: { max_tokens: 4, temperature: 0, top_p: 1, logprobs: true, top_logprobs: 3 } }, false, { logprobs: true, streamUsage: true }).logprobs).toBe(3);
    expect(completionBody({ ...base, sampling: { max_tokens: 4, temperature: 0, top_p: 1, logprobs: true } }, false, { logprobs: false, streamUsage: true }).logprobs).toBe(0);
    expect(completionBody({ ...base, sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }, false, { logprobs: true, streamUsage: true }).logprobs).toBe(1);
    expect(completionBody({ ...base, sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }, false, { logprobs: false, streamUsage: true })).not.toHaveProperty("logprobs");
  });
});
