import { describe, expect, it } from "vitest";
import { creditCompletion, creditPrompt, promptTokenBound, TEMPLATE_TOKENS_PER_MESSAGE, TEMPLATE_TOKENS_PER_PROMPT, TOOL_PROMPT_TOKENS } from "./honest-usage.js";

const base = { relayed: 5, exact: true, bytes: 20, budget: 16, claimed: 5 };

describe("creditCompletion", () => {
  it.each([
    ["exact ids and an honest claim: the relayed count", base, { tokens: 5 }],
    ["exact ids, no claim: the relayed count", { ...base, claimed: undefined }, { tokens: 5 }],
    ["exact ids and an inflated claim: the claim is ignored", { ...base, claimed: 9_007_199_254_740_991 }, { tokens: 5, correction: "claim_ignored" }],
    ["exact ids and an understated claim: still the relayed count", { ...base, claimed: 1 }, { tokens: 5, correction: "claim_ignored" }],
    ["no ids, a claim within the text: the claim", { ...base, exact: false, relayed: 3, claimed: 7 }, { tokens: 7 }],
    ["no ids, a claim above one token a byte, and the budget: the budget", { ...base, exact: false, relayed: 3, claimed: 500 }, { tokens: 16, correction: "claim_clamped" }],
    ["no ids, a claim above one token a byte: one a byte, plus one", { ...base, exact: false, relayed: 3, budget: 100, claimed: 500 }, { tokens: 21, correction: "claim_clamped" }],
    ["no ids, a claim below one token a delta: the deltas", { ...base, exact: false, relayed: 3, claimed: 1 }, { tokens: 3, correction: "claim_clamped" }],
    ["never past the budget", { ...base, relayed: 20, claimed: undefined }, { tokens: 16, correction: "over_budget" }],
  ])("%s", (_name, input, expected) => {
    expect(creditCompletion(input)).toEqual(expected);
  });
});

describe("prompt tokens", () => {
  const messages = [
    { role: "system" as const, content: "Be brief." },
    { role: "user" as const, content: "Grüße" },
  ];

  it("bounds a prompt by its UTF-8 bytes, roles and prefix included, plus the template's allowance", () => {
    const bytes = "Be brief.".length + "system".length + Buffer.byteLength("Grüße") + "user".length + "Hel".length;
    expect(promptTokenBound(messages, "Hel")).toBe(bytes + TEMPLATE_TOKENS_PER_MESSAGE * 3 + TEMPLATE_TOKENS_PER_PROMPT);
  });

  it("counts earlier tool calls, the tools offered (and the backend's instruction around them) and a JSON schema", () => {
    const call = { id: "c1", type: "function" as const, function: { name: "f", arguments: "{}" } };
    const withCalls = [...messages, { role: "assistant" as const, content: "", tool_calls: [call] }, { role: "tool" as const, content: "4", tool_call_id: "c1" }];
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
    const format = { type: "json_object" as const };
    const plain = promptTokenBound(withCalls, "");
    expect(plain).toBe(promptTokenBound(messages, "") + "assistant".length + JSON.stringify([call]).length + "tool4c1".length + 2 * TEMPLATE_TOKENS_PER_MESSAGE);
    expect(promptTokenBound(withCalls, "", { tools, response_format: format })).toBe(plain + JSON.stringify(tools).length + TOOL_PROMPT_TOKENS + JSON.stringify(format).length);
  });

  it("takes a claim within the bound and replaces one beyond it with the estimate", () => {
    const bound = promptTokenBound(messages, "");
    expect(creditPrompt(12, bound, 6)).toEqual({ tokens: 12 });
    expect(creditPrompt(bound, bound, 6)).toEqual({ tokens: bound });
    expect(creditPrompt(bound + 1, bound, 6)).toEqual({ tokens: 6, correction: "claim_clamped" });
    expect(creditPrompt(9_007_199_254_740_991, bound, 6)).toEqual({ tokens: 6, correction: "claim_clamped" });
  });
});
