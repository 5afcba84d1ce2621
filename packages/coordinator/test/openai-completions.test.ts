import { afterEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import type { JobAssignment, NodeRegister } from "@tessera/protocol";
import { newNode, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { refusal } from "./openai-refusal.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * `POST /v1/completions` against scripted nodes over real sessions, through the official client: each prompt runs as a
 * raw-prompt job (raw_prompt on job.assign, the prompt as the one user message), whole and streamed, n choices,
 * several prompts, stop, failover, routing to nodes that take raw prompts, and every bad parameter refused by name.
 */
let t: TestCoordinator;
let baseUrl: string;
let client: OpenAI;
let nodes: ScriptedNode[];
let nodeIds: string[];

const RAW = { id: "tiny", backend: "embedded", features: ["chat" as const, "raw_prompt" as const] };
const CHAT_ONLY = { id: "tiny", backend: "embedded", features: ["chat" as const] };

/** Answers each job with "<prompt> <seed>" in two deltas (token ids 1, 2), usage 7 + 2, finish stop. */
function answer(job: JobAssignment, node: ScriptedNode): void {
  node.accept(job.job_id);
  node.stream(job.job_id, [
    { type: "text-delta", text: ` ${job.messages[0]!.content}`, tokens: [1] },
    { type: "text-delta", text: ` ${job.sampling.seed}`, tokens: [2] },
    { type: "usage", prompt_tokens: 7, completion_tokens: 2 },
    { type: "finish", reason: "stop" },
  ]);
}

async function network(specs: Array<NodeRegister["models"]>): Promise<void> {
  t = await testCoordinator();
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
  client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: t.token, maxRetries: 0 });
  nodes = [];
  nodeIds = [];
  for (const models of specs) {
    const n = newNode();
    nodeIds.push(n.id);
    const reg: NodeRegister = { type: "register", public_key: n.id, version: "0.1.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models, max_concurrency: 8 };
    const res = await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", reg);
    if (res.statusCode !== 200) throw new Error(`registration refused: ${res.body}`);
    const node = new ScriptedNode(baseUrl, n.signer, () => Math.floor(t.clock.now() / 1000));
    await node.connect();
    node.onAssign = answer;
    nodes.push(node);
  }
}

afterEach(async () => {
  for (const n of nodes ?? []) await n.close();
  await t?.close();
});

const assigned = () => nodes.flatMap((n) => n.assignments);

async function post(body: unknown) {
  const res = await fetch(`${baseUrl}/v1/completions`, { method: "POST", headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { error?: { message: string; code: string; param: string | null } } & Record<string, unknown> };
}

describe("POST /v1/completions", () => {
  it("logprobs (the legacy integer): each choice's tokens, log-probabilities, alternatives and offsets, whole and streamed", async () => {
    await network([[{ ...RAW, features: [...RAW.features, "logprobs" as const] }]]);
    nodes[0]!.onAssign = (job, node) => {
      expect(job.sampling).toMatchObject({ logprobs: true, top_logprobs: 2 });
      node.accept(job.job_id);
      const token = (text: string, logprob: number) => ({ token: text, logprob, top_logprobs: [{ token: text, logprob }, { token: "x", logprob: logprob - 1 }] });
      node.stream(job.job_id, [
        { type: "text-delta", text: " Once", tokens: [1], logprobs: [-0.5], token_logprobs: [token(" Once", -0.5)] },
        { type: "text-delta", text: " upon", tokens: [2], logprobs: [-0.25], token_logprobs: [token(" upon", -0.25)] },
        { type: "usage", prompt_tokens: 3, completion_tokens: 2 },
        { type: "finish", reason: "stop" },
      ]);
    };
    const whole = await client.completions.create({ model: "tiny", prompt: "Tell", max_tokens: 2, logprobs: 2 });
    expect(whole.choices[0]!.logprobs).toEqual({
      tokens: [" Once", " upon"],
      token_logprobs: [-0.5, -0.25],
      top_logprobs: [{ " Once": -0.5, x: -1.5 }, { " upon": -0.25, x: -1.25 }],
      text_offset: [0, 5],
    });
    const stream = await client.completions.create({ model: "tiny", prompt: "Tell", max_tokens: 2, logprobs: 2, stream: true });
    const pieces: Array<{ tokens: string[]; offsets: number[] }> = [];
    for await (const chunk of stream) {
      const lp = chunk.choices[0]?.logprobs;
      if (lp?.tokens?.length) pieces.push({ tokens: lp.tokens, offsets: lp.text_offset! });
    }
    expect(pieces).toEqual([{ tokens: [" Once"], offsets: [0] }, { tokens: [" upon"], offsets: [5] }]);
    // A node that cannot return them is not sent the job: no node here can, so it is refused by name at once.
    await t.close();
    await network([[RAW]]);
    const err = await refusal(() => client.completions.create({ model: "tiny", prompt: "Tell", logprobs: 1 }));
    expect([err.code, err.param]).toEqual(["unsupported_parameter", "logprobs"]);
  });

  it("continues the prompt as a raw-prompt job and answers a text_completion", async () => {
    await network([[RAW]]);
    const completion = await client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 5, temperature: 0, seed: 3, user: "ignored" });
    expect(completion).toMatchObject({ object: "text_completion", model: "tiny", choices: [{ index: 0, text: " Once upon 3", logprobs: null, finish_reason: "stop" }] });
    expect(completion.id).toMatch(/^cmpl-/);
    expect(completion.created).toBeGreaterThan(0);
    expect(completion.usage).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
    expect(assigned()).toHaveLength(1);
    expect(assigned()[0]).toMatchObject({ raw_prompt: true, messages: [{ role: "user", content: "Once upon" }], sampling: { max_tokens: 5, temperature: 0, top_p: 1, seed: 3 } });
  });

  it("uses OpenAI's defaults for this endpoint: 16 tokens, temperature 1", async () => {
    await network([[RAW]]);
    await client.completions.create({ model: "tiny", prompt: "x" });
    expect(assigned()[0]!.sampling).toMatchObject({ max_tokens: 16, temperature: 1, top_p: 1 });
  });

  it("streams text_completion chunks by index, a finish chunk per choice, the usage with include_usage, then [DONE]", async () => {
    await network([[RAW]]);
    const res = await fetch(`${baseUrl}/v1/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "Hi", n: 2, seed: 5, stream: true, stream_options: { include_usage: true } }),
    });
    const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string; choices: Array<{ index: number; text: string; finish_reason: string | null; logprobs: null }>; usage: unknown });
    expect(chunks.every((c) => c.object === "text_completion")).toBe(true);
    const text = ["", ""];
    const finishes: Array<string | null> = [null, null];
    for (const c of chunks) {
      for (const choice of c.choices) {
        text[choice.index] += choice.text;
        expect(choice.logprobs).toBeNull();
        if (choice.finish_reason) finishes[choice.index] = choice.finish_reason;
      }
    }
    expect(text).toEqual([" Hi 5", " Hi 6"]);
    expect(finishes).toEqual(["stop", "stop"]);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 } });

    // And through the official client.
    const stream = await client.completions.create({ model: "tiny", prompt: "Hi", seed: 1, stream: true });
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
    expect(streamed).toBe(" Hi 1");
  });

  it("answers n choices per prompt, and several prompts in OpenAI's order, counting each prompt once", async () => {
    await network([[RAW]]);
    const two = await client.completions.create({ model: "tiny", prompt: "a", n: 2, seed: 10 });
    expect(two.choices.map((c) => [c.index, c.text])).toEqual([[0, " a 10"], [1, " a 11"]]);
    const many = await client.completions.create({ model: "tiny", prompt: ["a", "b"], n: 2, seed: 10 });
    expect(many.choices.map((c) => [c.index, c.text])).toEqual([[0, " a 10"], [1, " a 11"], [2, " b 10"], [3, " b 11"]]);
    expect(many.usage).toEqual({ prompt_tokens: 14, completion_tokens: 8, total_tokens: 22 });
  });

  it("honours stop: the text ends before it, the node is told, and the stop text is never sent, streamed or not", async () => {
    await network([[RAW]]);
    const whole = await client.completions.create({ model: "tiny", prompt: "count", seed: 42, stop: ["4"] });
    expect(whole.choices[0]).toMatchObject({ text: " count ", finish_reason: "stop" });
    expect(assigned()[0]!.sampling.stop).toEqual(["4"]);
    const stream = await client.completions.create({ model: "tiny", prompt: "count", seed: 42, stop: "2", stream: true });
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
    expect(streamed).toBe(" count 4");
  });

  it("goes only to nodes that take raw prompts; with none online it is refused naming prompt", async () => {
    await network([[CHAT_ONLY], [RAW]]);
    for (let i = 0; i < 4; i++) await client.completions.create({ model: "tiny", prompt: `p${i}` });
    expect(nodes[0]!.assignments).toHaveLength(0);
    expect(nodes[1]!.assignments).toHaveLength(4);
    await nodes[1]!.close();
    for (let i = 0; i < 100 && t.coordinator.ctx.registry.get(nodeIds[1]!)?.online; i++) await new Promise((r) => setTimeout(r, 10));
    const err = await refusal(() => client.completions.create({ model: "tiny", prompt: "p" }));
    expect(err.status).toBe(400);
    expect(err.code).toBe("unsupported_parameter");
    expect(err.param).toBe("prompt");
    expect(err.message).toMatch(/raw text prompt/);
  });

  it("a continuation after failover is a raw-prompt job too, with the text already sent as its prefix", async () => {
    await network([[RAW], [RAW]]);
    let first: ScriptedNode | undefined;
    for (const node of nodes) {
      node.onAssign = (job, self) => {
        if (!first) {
          first = self;
          self.accept(job.job_id);
          self.stream(job.job_id, [{ type: "text-delta", text: " upon", tokens: [1] }]);
          setTimeout(() => void self.close(), 30);
          return;
        }
        expect(job).toMatchObject({ raw_prompt: true, messages: [{ role: "user", content: "Once" }], assistant_prefix: " upon", assistant_prefix_tokens: [1] });
        self.accept(job.job_id);
        self.stream(job.job_id, [{ type: "text-delta", text: " a time", tokens: [2, 3] }, { type: "usage", prompt_tokens: 3, completion_tokens: 2 }, { type: "finish", reason: "stop" }]);
      };
    }
    const stream = await client.completions.create({ model: "tiny", prompt: "Once", max_tokens: 8, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(" upon a time");
  });

  it("a failing choice shows its message in the client and stops the others", async () => {
    await network([[RAW]]);
    nodes[0]!.onAssign = (job, self) => {
      self.accept(job.job_id);
      if (job.sampling.seed === 2) self.stream(job.job_id, [{ type: "error", code: "bad_request", message: "prompt is 9000 tokens; this model's context holds 4096" }, { type: "finish", reason: "error" }]);
    };
    const err = await refusal(() => client.completions.create({ model: "tiny", prompt: "x", n: 3, seed: 1 }));
    expect(err.message).toMatch(/context holds 4096/);
  });

  it("refuses every bad or unsupported parameter by name with OpenAI's error shape, before any node is asked", async () => {
    await network([[RAW]]);
    const ok = { model: "tiny", prompt: "x" };
    const cases: Array<[unknown, string, string]> = [
      [{ prompt: "x" }, "model", "bad_request"],
      [{ ...ok, model: "" }, "model", "bad_request"],
      [{ ...ok, model: 3 }, "model", "bad_request"],
      [{ model: "tiny" }, "prompt", "bad_request"],
      [{ ...ok, prompt: "" }, "prompt", "bad_request"],
      [{ ...ok, prompt: [] }, "prompt", "bad_request"],
      [{ ...ok, prompt: { text: "x" } }, "prompt", "bad_request"],
      [{ ...ok, prompt: [1, 2, 3] }, "prompt", "unsupported_parameter"],
      [{ ...ok, prompt: [[1, 2]] }, "prompt", "unsupported_parameter"],
      [{ ...ok, prompt: Array(9).fill("a") }, "prompt", "bad_request"],
      [{ ...ok, max_tokens: 0 }, "max_tokens", "bad_request"],
      [{ ...ok, max_tokens: 2.5 }, "max_tokens", "bad_request"],
      [{ ...ok, max_tokens: 10_000_000 }, "max_tokens", "bad_request"],
      [{ ...ok, temperature: 2.5 }, "temperature", "bad_request"],
      [{ ...ok, temperature: "hot" }, "temperature", "bad_request"],
      [{ ...ok, top_p: 0 }, "top_p", "bad_request"],
      [{ ...ok, top_p: 1.5 }, "top_p", "bad_request"],
      [{ ...ok, seed: -1 }, "seed", "bad_request"],
      [{ ...ok, seed: 1.5 }, "seed", "bad_request"],
      [{ ...ok, stop: "" }, "stop", "bad_request"],
      [{ ...ok, stop: ["a", "b", "c", "d", "e"] }, "stop", "bad_request"],
      [{ ...ok, stop: [1] }, "stop", "bad_request"],
      [{ ...ok, n: 0 }, "n", "bad_request"],
      [{ ...ok, n: 9 }, "n", "bad_request"],
      [{ ...ok, prompt: ["a", "b", "c"], n: 3 }, "n", "bad_request"],
      [{ ...ok, stream: "yes" }, "stream", "bad_request"],
      [{ ...ok, stream_options: { include_usage: 1 } }, "stream_options.include_usage", "bad_request"],
      [{ ...ok, suffix: "the end" }, "suffix", "unsupported_parameter"],
      [{ ...ok, echo: true }, "echo", "unsupported_parameter"],
      [{ ...ok, best_of: 3 }, "best_of", "unsupported_parameter"],
      [{ ...ok, logit_bias: { "50256": -100 } }, "logit_bias", "unsupported_parameter"],
      [{ ...ok, logprobs: 6 }, "logprobs", "bad_request"],
      [{ ...ok, logprobs: -1 }, "logprobs", "bad_request"],
      [{ ...ok, logprobs: true }, "logprobs", "bad_request"],
      [{ ...ok, frequency_penalty: 1 }, "frequency_penalty", "unsupported_parameter"],
      [{ ...ok, presence_penalty: -1 }, "presence_penalty", "unsupported_parameter"],
      [{ ...ok, messages: [{ role: "user", content: "x" }] }, "messages", "bad_request"],
    ];
    for (const [body, param, code] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error, JSON.stringify(body)).toMatchObject({ param, code });
      expect(res.body.error!.message.length).toBeGreaterThan(0);
    }
    const unknown = await post({ ...ok, model: "nobody-serves-this" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: "model_not_found", param: "model" });
    // What SDKs send by default is accepted: the neutral values of the parameters refused above.
    const neutral = await post({ ...ok, suffix: "", echo: false, best_of: 1, logit_bias: {}, logprobs: null, frequency_penalty: 0, presence_penalty: 0 });
    expect(neutral.status).toBe(200);
    expect(assigned()).toHaveLength(1);
    // The message reaches the official client.
    const err = await refusal(() => client.completions.create({ model: "tiny", prompt: "x", echo: true }));
    expect(err.message).toMatch(/echo is not supported/);
    expect(err.param).toBe("echo");
  });
});
