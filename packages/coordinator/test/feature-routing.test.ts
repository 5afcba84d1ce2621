import { afterEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import type { JobAssignment, ModelFeature } from "@tessera/protocol";
import { newNode, registration, signedInject, type ScriptedNetwork, scriptedNetwork } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * Routing by what each node's backend can do (protocol model-features.ts): a request goes only to a node whose model
 * offers everything it asks; a parameter no online node can honour is refused at once, by name; a node that declines
 * one after all hands the job on.
 */
let net: ScriptedNetwork;
afterEach(async () => net?.close());

/** A scripted node on `net` announcing `features` for "tiny". */
async function nodeWith(features: ModelFeature[]): Promise<ScriptedNode> {
  const n = newNode();
  const res = await signedInject(net.t, n.signer, "POST", "/api/v1/nodes/register", registration(n.id, ["tiny"], features));
  expect(res.statusCode).toBe(200);
  const node = new ScriptedNode(net.baseUrl, n.signer, () => Math.floor(net.t.clock.now() / 1000));
  await node.connect();
  net.nodes.push(node);
  return node;
}

const chat = { model: "tiny", messages: [{ role: "user" as const, content: "hi" }] };
const answer = (label: string) => (job: JobAssignment, self: ScriptedNode) => {
  self.accept(job.job_id);
  self.stream(job.job_id, [
    { type: "text-delta", text: label, tokens: [1] },
    { type: "usage", prompt_tokens: 3, completion_tokens: 1 },
    { type: "finish", reason: "stop" },
  ]);
};

describe("routing by model features", () => {
  it("sends a logprobs request only to the node that offers logprobs, and plain ones to either", async () => {
    net = await scriptedNetwork(0);
    const plain = await nodeWith(["chat"]);
    const scoring = await nodeWith(["chat", "logprobs"]);
    plain.onAssign = answer("plain");
    scoring.onAssign = answer("scoring");
    const client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: net.t.token, maxRetries: 0 });
    for (let i = 0; i < 4; i++) {
      const r = await client.chat.completions.create({ ...chat, logprobs: true });
      expect(r.choices[0]!.message.content).toBe("scoring");
    }
    expect(plain.assignments).toHaveLength(0);
  });

  it("refuses at once, naming the parameter, what no online node serving the model can honour", async () => {
    net = await scriptedNetwork(0);
    const node = await nodeWith(["chat", "tools"]);
    const client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: net.t.token, maxRetries: 0 });
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ logprobs: true }, "logprobs", /return log-probabilities/],
      [{ response_format: { type: "json_object" } }, "response_format", /constrain its answer to JSON/],
      [
        { tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }], tool_choice: "required" },
        "tool_choice",
        /force a tool call/,
      ],
    ];
    for (const [extra, param, message] of cases) {
      const err = await client.chat.completions.create({ ...chat, ...extra } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect([e.code, e.param]).toEqual(["unsupported_parameter", param]);
      expect(e.message).toMatch(message);
    }
    expect(node.assignments).toHaveLength(0);
    // The native API refuses alike.
    const res = await net.t.coordinator.app.inject({
      method: "POST",
      url: "/api/v1/jobs",
      headers: { authorization: `Bearer ${net.t.token}`, "content-type": "application/json" },
      payload: JSON.stringify({ ...chat, response_format: { type: "json_object" } }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: "unsupported_parameter" });
  });

  it("a node that declines a parameter hands the job to one that can; nobody's offence", async () => {
    net = await scriptedNetwork(0);
    const first = await nodeWith(["chat", "logprobs"]);
    const second = await nodeWith(["chat", "logprobs"]);
    let decliner: ScriptedNode | undefined;
    const decline = (job: JobAssignment, self: ScriptedNode) => {
      decliner = self;
      self.accept(job.job_id);
      self.stream(job.job_id, [{ type: "error", code: "unsupported_parameter", message: "cannot today" }, { type: "finish", reason: "error" }]);
    };
    // Whichever node routing picks first declines; the other answers.
    first.onAssign = (job, self) => (decliner ? answer("first")(job, self) : decline(job, self));
    second.onAssign = (job, self) => (decliner ? answer("second")(job, self) : decline(job, self));
    const client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: net.t.token, maxRetries: 0 });
    const r = await client.chat.completions.create({ ...chat, logprobs: true });
    expect(r.choices[0]!.message.content).toBe(decliner === first ? "second" : "first");
    expect(first.assignments.length + second.assignments.length).toBe(2);
  });

  it("when every node declines, the client hears the node's refusal with its code", async () => {
    net = await scriptedNetwork(0);
    for (let i = 0; i < 2; i++) {
      const node = await nodeWith(["chat", "logprobs"]);
      node.onAssign = (job, self) => {
        self.accept(job.job_id);
        self.stream(job.job_id, [{ type: "error", code: "unsupported_parameter", message: "logprobs cannot be given with this grammar" }, { type: "finish", reason: "error" }]);
      };
    }
    const client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: net.t.token, maxRetries: 0 });
    const err = await client.chat.completions.create({ ...chat, logprobs: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("unsupported_parameter");
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).message).toMatch(/logprobs cannot be given with this grammar/);
    expect(net.nodes.every((n) => n.assignments.length === 1)).toBe(true);
  });
});
