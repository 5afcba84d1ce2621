import { afterEach, beforeEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { refusal } from "./openai-refusal.js";
import type { JobAssignment } from "@tessera/protocol";
import { type ScriptedNetwork, scriptedNetwork } from "./harness.js";

/**
 * response_format and tools through the OpenAI route, with a scripted node: what the node is asked for, how its
 * tool-calls part reaches an OpenAI client (whole and streamed), and what bad input is refused with.
 */
let net: ScriptedNetwork;
let client: OpenAI;
let assigned: JobAssignment[];
const WEATHER = {
  type: "function" as const,
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
};
const CALL = { id: "call_abc", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Oslo"}' } };

beforeEach(async () => {
  net = await scriptedNetwork(1);
  client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: net.t.token, maxRetries: 0 });
  assigned = [];
  net.nodes[0]!.onAssign = (job, self) => {
    assigned.push(job);
    self.accept(job.job_id);
    const calls = job.sampling.tools && job.sampling.tool_choice !== "none";
    self.stream(job.job_id, [
      ...(calls ? [{ type: "tool-calls" as const, calls: [CALL], tokens: [5, 6, 7] }] : [{ type: "text-delta" as const, text: '{"a":1}', tokens: [1, 2] }]),
      { type: "usage", prompt_tokens: 3, completion_tokens: calls ? 3 : 2 },
      { type: "finish", reason: "stop" },
    ]);
  };
});
afterEach(async () => net.close());

const chat = { model: "tiny", messages: [{ role: "user" as const, content: "weather?" }] };

describe("response_format through the OpenAI route", () => {
  it("carries json_schema (with strict) and json_object to the node; text asks for nothing", async () => {
    const schema = { type: "object", properties: { a: { type: "integer" } }, required: ["a"], additionalProperties: false };
    const answer = await client.chat.completions.create({ ...chat, response_format: { type: "json_schema", json_schema: { name: "a", schema, strict: true } } });
    expect(JSON.parse(answer.choices[0]!.message.content!)).toEqual({ a: 1 });
    await client.chat.completions.create({ ...chat, response_format: { type: "json_object" } });
    await client.chat.completions.create({ ...chat, response_format: { type: "text" } });
    expect(assigned.map((j) => j.sampling.response_format)).toEqual([
      { type: "json_schema", json_schema: { name: "a", schema, strict: true } },
      { type: "json_object" },
      undefined,
    ]);
  });

  it("the native jobs API carries it too", async () => {
    const res = await fetch(`${net.baseUrl}/api/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${net.t.token}`, "content-type": "application/json" },
      body: JSON.stringify({ ...chat, response_format: { type: "json_object" } }),
    });
    expect(res.status).toBe(202);
    for (let i = 0; i < 100 && assigned.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(assigned[0]!.sampling.response_format).toEqual({ type: "json_object" });
  });

  it.each([
    ["a malformed schema", { type: "object", properties: { a: { type: "strng" } } }, "response_format.json_schema.schema.properties.a.type", /type must be one of/],
    ["a schema that is not an object", [1, 2], "response_format.json_schema.schema", /expected record/i],
    ["a schema nested too deep", nest(12), "response_format.json_schema.schema" + ".properties.x".repeat(11), /deeper than 10 levels/],
  ])("refuses %s with 400 naming where", async (_name, schema, param, message) => {
    const err = await refusal(() =>
      client.chat.completions.create({ ...chat, response_format: { type: "json_schema", json_schema: { name: "s", schema: schema as never } } }),
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe(param);
    expect(err.message).toMatch(message);
    expect(assigned).toEqual([]);
  });
});

describe("tools through the OpenAI route", () => {
  it("answers a call as tool_calls with finish_reason tool_calls, and counts its tokens", async () => {
    const answer = await client.chat.completions.create({ ...chat, tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false });
    expect(answer.choices[0]).toMatchObject({ finish_reason: "tool_calls", message: { role: "assistant", content: null, tool_calls: [CALL] } });
    expect(answer.usage?.completion_tokens).toBe(3);
    expect(assigned[0]!.sampling).toMatchObject({ tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false });
  });

  it("a call cut short by max_tokens ends with finish_reason length, its partial call shown as OpenAI shows it", async () => {
    net.nodes[0]!.onAssign = (job, self) => {
      self.accept(job.job_id);
      self.stream(job.job_id, [
        { type: "tool-calls", calls: [{ ...CALL, function: { name: "get_weather", arguments: '{"ci' } }], tokens: [5] },
        { type: "usage", prompt_tokens: 3, completion_tokens: 1 },
        { type: "finish", reason: "length" },
      ]);
    };
    const answer = await client.chat.completions.create({ ...chat, tools: [WEATHER], max_tokens: 1 });
    expect(answer.choices[0]).toMatchObject({ finish_reason: "length", message: { tool_calls: [{ function: { arguments: '{"ci' } }] } });
  });

  it("streams a call as OpenAI does: id and name first, then the arguments, then finish_reason tool_calls", async () => {
    const stream = await client.chat.completions.create({ ...chat, tools: [WEATHER], stream: true });
    const deltas: unknown[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.tool_calls) deltas.push(...chunk.choices[0].delta.tool_calls);
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(deltas).toEqual([
      { index: 0, id: "call_abc", type: "function", function: { name: "get_weather", arguments: "" } },
      { index: 0, function: { arguments: '{"city":"Oslo"}' } },
    ]);
    expect(finish).toBe("tool_calls");
  });

  it("takes the call and its result back in the next turn and hands both to the node", async () => {
    const answer = await client.chat.completions.create({
      model: "tiny",
      tools: [WEATHER],
      tool_choice: "none",
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: null, tool_calls: [CALL] },
        { role: "tool", tool_call_id: "call_abc", content: '{"temp":4}' },
      ],
    });
    expect(answer.choices[0]!.finish_reason).toBe("stop");
    expect(assigned[0]!.messages).toEqual([
      { role: "user", content: "weather?" },
      { role: "assistant", content: "", tool_calls: [CALL] },
      { role: "tool", content: '{"temp":4}', tool_call_id: "call_abc" },
    ]);
  });

  it("a tool chat's continuation carries the first node's prompt ids and tools; a node that declines them passes the job on", async () => {
    const three = await scriptedNetwork(3);
    try {
      const seen: JobAssignment[] = [];
      for (const n of three.nodes) {
        n.onAssign = (job, self) => {
          seen.push(job);
          self.accept(job.job_id);
          if (seen.length === 1) {
            // The first node renders the tool chat, reports its ids, writes the text branch's start and is lost.
            self.stream(job.job_id, [{ type: "prompt", tokens: [4, 5, 6] }, { type: "text-delta", text: "Sun", tokens: [7] }]);
            setTimeout(() => void self.close(), 30);
          } else if (seen.length === 2) {
            // A backend that cannot run ids with tools (vLLM, SGLang, Ollama) declines before writing anything.
            self.stream(job.job_id, [{ type: "error", code: "unsupported_parameter", message: "prompt_tokens cannot be used with tools here" }]);
          } else {
            self.stream(job.job_id, [{ type: "text-delta", text: "ny", tokens: [8] }, { type: "usage", prompt_tokens: 4, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
          }
        };
      }
      const other = new OpenAI({ baseURL: `${three.baseUrl}/v1`, apiKey: three.t.token, maxRetries: 0 });
      const answer = await other.chat.completions.create({ ...chat, tools: [WEATHER], max_tokens: 8 });
      expect(answer.choices[0]!.message.content).toBe("Sunny");
      expect(seen).toHaveLength(3);
      for (const later of seen.slice(1)) {
        expect(later).toMatchObject({ prompt_tokens: [4, 5, 6], assistant_prefix: "Sun", assistant_prefix_tokens: [7], sampling: { tools: [WEATHER] } });
      }
    } finally {
      await three.close();
    }
  });

  it.each([
    ["a tool_choice naming an unknown tool", { tools: [WEATHER], tool_choice: { type: "function", function: { name: "get_time" } } }, "tool_choice.function.name", /get_time, which is not among tools/],
    ["a tool_choice without tools", { tool_choice: "required" }, "tool_choice", /only allowed when tools are specified/],
    ["two tools with one name", { tools: [WEATHER, WEATHER] }, "tools.1.function.name", /two tools are named get_weather/],
    ["a bad function name", { tools: [{ type: "function", function: { name: "get weather" } }] }, "tools.0.function.name", /letters, digits/],
    ["a malformed parameters schema", { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", required: "city" } } }] }, "tools.0.function.parameters.required", /list of property names/],
    ["a tool message without tool_call_id", { messages: [{ role: "tool", content: "x" }] }, "messages.0.tool_call_id", /./],
    ["a deprecated function_call on an assistant message", { messages: [{ role: "user", content: "x" }, { role: "assistant", content: null, function_call: { name: "f", arguments: "{}" } }] }, "messages.1.function_call", /deprecated/],
    ["an assistant message with neither content nor calls", { messages: [{ role: "user", content: "x" }, { role: "assistant", content: null }] }, "messages.1.content", /needs content or tool_calls/],
  ])("refuses %s with 400 naming the param", async (_name, extra, param, message) => {
    const err = await refusal(() => client.chat.completions.create({ ...chat, ...extra } as never));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe(param);
    expect(err.message).toMatch(message);
    expect(assigned).toEqual([]);
  });
});

function nest(levels: number): Record<string, unknown> {
  let schema: Record<string, unknown> = { type: "string" };
  for (let i = 0; i < levels; i++) schema = { type: "object", properties: { x: schema } };
  return schema;
}
