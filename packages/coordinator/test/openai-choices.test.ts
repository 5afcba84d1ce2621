import { afterEach, beforeEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import type { JobAssignment } from "@tessera/protocol";
import { type ScriptedNetwork, scriptedNetwork } from "./harness.js";

/** `n` choices through the OpenAI route with the real openai client: one job each, whole and streamed. */
let net: ScriptedNetwork;
let client: OpenAI;
let assigned: JobAssignment[];

beforeEach(async () => {
  net = await scriptedNetwork(2);
  client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: net.t.token, maxRetries: 0 });
  assigned = [];
  for (const node of net.nodes) {
    node.onAssign = (job, self) => {
      assigned.push(job);
      self.accept(job.job_id);
      self.stream(job.job_id, [
        { type: "text-delta", text: `seed ${job.sampling.seed}`, tokens: [1, 2] },
        { type: "usage", prompt_tokens: 7, completion_tokens: 2 },
        { type: "finish", reason: "stop" },
      ]);
    };
  }
});
afterEach(async () => net.close());

const chat = { model: "tiny", messages: [{ role: "user" as const, content: "hi" }] };

describe("n choices", () => {
  it("answers n choices, each its own job sampled with seed + index, counting the prompt once", async () => {
    const completion = await client.chat.completions.create({ ...chat, n: 3, seed: 10 });
    expect(completion.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
      [0, "seed 10", "stop"],
      [1, "seed 11", "stop"],
      [2, "seed 12", "stop"],
    ]);
    expect(completion.usage).toEqual({ prompt_tokens: 7, completion_tokens: 6, total_tokens: 13 });
    expect(assigned).toHaveLength(3);
  });

  it("streams every choice by its index, each with its own finish, then the usage and one [DONE]", async () => {
    const stream = await client.chat.completions.create({ ...chat, n: 2, seed: 5, stream: true, stream_options: { include_usage: true } });
    const text = ["", ""];
    const finishes: Array<string | null> = [null, null];
    let usage: unknown;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text[choice.index] += choice.delta.content ?? "";
        if (choice.finish_reason) finishes[choice.index] = choice.finish_reason;
      }
    }
    expect(text).toEqual(["seed 5", "seed 6"]);
    expect(finishes).toEqual(["stop", "stop"]);
    expect(usage).toEqual({ prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
  });

  it("fails the whole request when one choice fails, and stops the others", async () => {
    const held: string[] = [];
    for (const node of net.nodes) {
      node.onAssign = (job, self) => {
        self.accept(job.job_id);
        if (job.sampling.seed === 11) {
          self.stream(job.job_id, [{ type: "error", code: "bad_request", message: "this choice cannot be made" }, { type: "finish", reason: "error" }]);
        } else {
          held.push(job.job_id); // holds: cancelled when the request fails
        }
      };
    }
    const err = await client.chat.completions.create({ ...chat, n: 3, seed: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/this choice cannot be made/);
    for (let i = 0; i < 100 && !held.every((id) => net.nodes.some((n) => n.cancels.includes(id))); i++) await new Promise((r) => setTimeout(r, 20));
    expect(held).toHaveLength(2);
    expect(held.every((id) => net.nodes.some((n) => n.cancels.includes(id)))).toBe(true);
  });
});
