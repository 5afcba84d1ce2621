import { TesseraError } from "@tessera/protocol";
import { describe, expect, it } from "vitest";
import type { ScoreRequest, ScoreResult } from "../../src/backends/adapter.js";
import { createLlamaServerScorer } from "../../src/backends/llama-server/llama-server-score.js";
import { createSglangScorer } from "../../src/backends/sglang/sglang-score.js";
import { createVllmScorer } from "../../src/backends/vllm/vllm-score.js";

/**
 * Backends that score without a grammar refuse a constrained answer before any request to their server: ranks taken
 * without the grammar would fail an honest node (node/src/verification/design.md, "Constrained answers").
 */
const untouched: typeof globalThis.fetch = () => Promise.reject(new Error("no request may reach the server"));
const http = { baseURL: "http://127.0.0.1:9", fetch: untouched, headers: {} };
const request: ScoreRequest = {
  model: "m",
  messages: [{ role: "user", content: "Weather in Oslo?" }],
  constraint: { tools: [{ type: "function", function: { name: "get_weather" } }], tool_choice: "required" },
  outputTokens: [1, 2, 3],
};

describe("score() of backends without a grammar", () => {
  const scorers: Array<[string, (r: ScoreRequest) => Promise<ScoreResult>]> = [
    ["llama-server", createLlamaServerScorer({ ...http, kind: "llama-server", prompt: { promptTokens: () => Promise.reject(new Error("not rendered")) } })],
    ["vllm", createVllmScorer({ ...http, kind: "vllm", eosTokenIds: [2] })],
    ["sglang", createSglangScorer({ ...http, kind: "sglang", eosTokenIds: [2] })],
  ];
  for (const [kind, score] of scorers) {
    it(`${kind} refuses a constraint with unsupported_parameter naming it`, async () => {
      const error = await score(request).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TesseraError);
      expect(error).toMatchObject({ code: "unsupported_parameter", param: "constraint", message: expect.stringContaining(kind) });
    });
  }
});
