import { describe, expect, it } from "vitest";
import type { CheckScore, Sampling, ServedModel, ToolDefinition } from "@tessera/protocol";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import { type DeliveredAnswer, type SkipReason, SpotChecks, type SpotChecksDeps } from "./spot-checks.js";

/**
 * Spot checks of answers generated under a grammar (tools, response_format; trust/design.md "Spot checks",
 * constrained answers): greedy and sampled ones (temperature ≤ 1) from a node that ran the canonical prompt are scored
 * by references that announce constrained_scoring, told the grammar in `check.score` `constraint`; ones from backends
 * with their own tool templates are not checked.
 */
const WEATHER: ToolDefinition = { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };
const TOOLS: Partial<Sampling> = { tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false };
const JSON_MODE: Partial<Sampling> = { response_format: { type: "json_object" } };

function setup(checkedBackend: string, referenceBackends: string[]) {
  const nodes = new Map<string, { id: string; operatorId: string; online: boolean; draining: boolean; models: ServedModel[] }>();
  // Embedded nodes announce constrained_scoring; "embedded (old)" is one from before constraints existed.
  const add = (id: string, kind: string) => {
    const backend = kind === "embedded (old)" ? "embedded" : kind;
    const model: ServedModel = { id: "tiny", backend, scoring: true, ...(kind === "embedded" ? { constrained_scoring: true } : {}) };
    nodes.set(id, { id, operatorId: `op-${id}`, online: true, draining: false, models: [model] });
  };
  add("checked", checkedBackend);
  referenceBackends.forEach((backend, i) => add(`${backend}-${i}`, backend));
  const sent: Array<{ to: string; message: CheckScore }> = [];
  const skipped: SkipReason[] = [];
  const debug: Array<Record<string, unknown>> = [];
  const recorded: Array<{ node: string; passed: boolean }> = [];
  let r = 0;
  const deps: SpotChecksDeps = {
    registry: { get: (id: string) => nodes.get(id), all: () => nodes.values() } as unknown as NodeRegistry,
    messenger: { send: (to, message) => void sent.push({ to, message: message as CheckScore }) as unknown as boolean, reachable: () => true },
    standing: { checkRate: () => 1, recordCheck: (node, { passed }) => void recorded.push({ node, passed }), isQuarantined: () => false, tier: () => "normal" },
    clock: { now: () => 0 } as SpotChecksDeps["clock"],
    logger: { info() {}, warn() {}, error() {}, debug: (fields: Record<string, unknown>) => void debug.push(fields) } as unknown as Logger,
    random: () => ((r = (r + 0.137) % 1), r),
    namedReferences: new Set([...nodes.keys()].filter((id) => id !== "checked")),
    rateOverride: 1,
    timeoutMs: 60_000,
    metrics: { checked() {}, skipped: (reason) => void skipped.push(reason) },
  };
  return { checks: new SpotChecks(deps), sent, skipped, debug, recorded };
}

function answer(jobId: string, sampling: Partial<Sampling>): DeliveredAnswer {
  return {
    jobId,
    nodeId: "checked",
    model: "tiny",
    messages: [{ role: "user", content: "Weather in Oslo?" }],
    promptTokens: [1, 5, 6, 7],
    sampling: { max_tokens: 8, temperature: 0, top_p: 1, ...sampling },
    outputTokens: [11, 12, 13],
    finishReason: "stop",
    claimedUsage: { promptTokens: 4, completionTokens: 3 },
  };
}

describe("spot checks of constrained answers", () => {
  it("a greedy tool-call answer goes to embedded references only, with its grammar", () => {
    const { checks, sent } = setup("embedded", ["embedded", "llama-server", "embedded"]);
    for (let i = 0; i < 20; i++) checks.afterDelivery(answer(`job-${i}`, TOOLS));
    expect(new Set(sent.map((s) => s.to))).toEqual(new Set(["embedded-0", "embedded-2"]));
    expect(sent[0]!.message).toMatchObject({ type: "check.score", prompt_tokens: [1, 5, 6, 7], output_tokens: [11, 12, 13], constraint: TOOLS });
  });

  it("an embedded reference that does not announce constrained_scoring (a node from before) is never asked", () => {
    const { checks, sent } = setup("embedded", ["embedded (old)", "embedded"]);
    for (let i = 0; i < 20; i++) checks.afterDelivery(answer(`job-${i}`, TOOLS));
    expect(new Set(sent.map((s) => s.to))).toEqual(new Set(["embedded-1"]));
  });

  it("a greedy JSON answer of a llama-server node (canonical prompt) is checked by an embedded reference", () => {
    const { checks, sent } = setup("llama-server", ["llama-server", "embedded"]);
    for (let i = 0; i < 10; i++) checks.afterDelivery(answer(`job-${i}`, JSON_MODE));
    expect(new Set(sent.map((s) => s.to))).toEqual(new Set(["embedded-1"]));
    expect(sent[0]!.message.constraint).toEqual(JSON_MODE);
  });

  it("an answer without a grammar carries none and may still go to any reference of its rendering", () => {
    const { checks, sent } = setup("embedded", ["llama-server", "embedded"]);
    for (let i = 0; i < 10; i++) checks.afterDelivery(answer(`job-${i}`, {}));
    expect(new Set(sent.map((s) => s.to))).toEqual(new Set(["llama-server-0", "embedded-1"]));
    expect(sent.every((s) => s.message.constraint === undefined)).toBe(true);
  });

  it("a sampled constrained answer is checked too, with its grammar, and judged by the sampled bound", () => {
    const { checks, sent, recorded } = setup("embedded", ["embedded"]);
    checks.afterDelivery(answer("job-1", { ...TOOLS, temperature: 0.7 }));
    checks.afterDelivery(answer("job-2", { ...JSON_MODE, temperature: 1 }));
    expect(sent.map((s) => s.message.constraint)).toEqual([TOOLS, JSON_MODE]);
    // Honest: every token among the allowed top 20 (the reference's allowed share of its top 20 as the mass).
    const [first, second] = sent;
    checks.onMessage(first!.to, { type: "check.scores", check_id: first!.message.check_id, prompt_tokens: 4, positions: first!.message.output_tokens.map((token) => ({ token, logprob: -1, rank: 3, top_mass: 0.6 })), eos: { logprob: -1, rank: 2 } });
    // A token the grammar forbids: rank 21 where the reference says no honest sampler writes one (top mass 1).
    checks.onMessage(second!.to, {
      type: "check.scores",
      check_id: second!.message.check_id,
      prompt_tokens: 4,
      positions: second!.message.output_tokens.map((token, i) => ({ token, logprob: -1, rank: i === 2 ? 21 : 1, top_mass: i === 2 ? 1 : 0.5 })),
      eos: { logprob: -1, rank: 1 },
    });
    expect(recorded).toEqual([{ node: "checked", passed: true }, { node: "checked", passed: false }]);
  });

  it("a constrained answer sampled hotter than 1 is not checked", () => {
    const { checks, sent, skipped } = setup("embedded", ["embedded"]);
    checks.afterDelivery(answer("job-1", { ...TOOLS, temperature: 1.3 }));
    expect(sent).toEqual([]);
    expect(skipped).toEqual(["not_checkable"]);
  });

  it("without an embedded reference a constrained answer is skipped, saying why; a free one is still checked", () => {
    const { checks, sent, skipped, debug } = setup("embedded", ["llama-server"]);
    checks.afterDelivery(answer("job-1", TOOLS));
    expect(sent).toEqual([]);
    expect(skipped).toEqual(["no_reference"]);
    expect(debug.at(-1)).toMatchObject({ reason: "no_reference", why: expect.stringContaining("grammar") });
    checks.afterDelivery(answer("job-2", {}));
    expect(sent.map((s) => s.to)).toEqual(["llama-server-0"]);
  });

  it("a tool chat of a backend with its own tool template (vLLM) is not checked, even by a reference of its kind", () => {
    const { checks, sent, skipped } = setup("vllm", ["vllm", "embedded"]);
    checks.afterDelivery(answer("job-1", TOOLS));
    expect(sent).toEqual([]);
    expect(skipped).toEqual(["not_checkable"]);
  });

  it("judges the reference's grammar-ranked scores with the greedy verdict, without claimed log-probabilities", () => {
    const { checks, sent, recorded } = setup("embedded", ["embedded"]);
    checks.afterDelivery(answer("job-1", JSON_MODE));
    const { to, message } = sent[0]!;
    checks.onMessage(to, { type: "check.scores", check_id: message.check_id, prompt_tokens: 4, positions: message.output_tokens.map((token) => ({ token, logprob: -0.1, rank: 1 })), eos: { logprob: -30, rank: 1 } });
    checks.afterDelivery(answer("job-2", JSON_MODE));
    const second = sent[1]!;
    // A token the grammar forbids: the reference ranks it 21.
    checks.onMessage(second.to, { type: "check.scores", check_id: second.message.check_id, prompt_tokens: 4, positions: second.message.output_tokens.map((token, i) => ({ token, logprob: -0.1, rank: i === 1 ? 21 : 1 })), eos: { logprob: -0.1, rank: 1 } });
    expect(recorded).toEqual([{ node: "checked", passed: true }, { node: "checked", passed: false }]);
  });
});
