import { startFakeOllama, startFakeOpenAICompatible, type OpenAIFlavourName } from "@tessera/testkit";
import type { Sampling } from "@tessera/protocol";
import { describe, expect, it } from "vitest";
import type { BackendAdapter } from "../../src/backends/adapter.js";
import { createLlamaServerAdapter } from "../../src/backends/llama-server/llama-server-adapter.js";
import { createMaxAdapter } from "../../src/backends/max/max-adapter.js";
import { createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";
import { toolCallPieces } from "../../src/backends/ollama/map-tool-calls.js";
import { createSglangAdapter } from "../../src/backends/sglang/sglang-adapter.js";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";

/** What each HTTP backend is sent for response_format and tools: its own dialect, read off the fake's request log. */
const SCHEMA = { type: "object", properties: { a: { type: "integer" } }, required: ["a"], additionalProperties: false };
const JSON_SCHEMA = { type: "json_schema" as const, json_schema: { name: "a", schema: SCHEMA, strict: true } };
const WEATHER = { type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };
const base: Sampling = { max_tokens: 8, temperature: 0, top_p: 1 };
const messages = [{ role: "user" as const, content: "hi" }];

async function sentBody(adapter: BackendAdapter, model: string, requests: () => { body: unknown }[], sampling: Sampling) {
  for await (const _part of adapter.doStream({ model, messages, sampling })) void _part;
  return requests().at(-1)!.body as Record<string, unknown>;
}

const flavours: [OpenAIFlavourName, (url: string) => BackendAdapter, unknown][] = [
  ["vllm", (host) => createVllmAdapter({ instances: [{ host, model: "m" }] }), { type: "json_object" }],
  ["llama-server", (baseURL) => createLlamaServerAdapter({ baseURL }), { type: "json_object" }],
  // SGLang and MAX document json_schema only: json_object goes as the schema that means the same.
  ["sglang", (baseURL) => createSglangAdapter({ baseURL }), { type: "json_schema", json_schema: { name: "json_object", schema: { type: "object" }, strict: true } }],
  ["max", (baseURL) => createMaxAdapter({ baseURL }), { type: "json_schema", json_schema: { name: "json_object", schema: { type: "object" }, strict: true } }],
];

describe.each(flavours)("%s is sent response_format and tools as OpenAI spells them", (flavour, make, jsonObject) => {
  it("json_schema as given, json_object in its dialect, tools with tool_choice and parallel_tool_calls", async () => {
    const fake = await startFakeOpenAICompatible({ flavour, models: ["m"] });
    try {
      const adapter = make(fake.url);
      const requests = () => fake.http.requests.filter((r) => r.path === "/v1/chat/completions");
      expect((await sentBody(adapter, "m", requests, { ...base, response_format: JSON_SCHEMA })).response_format).toEqual(JSON_SCHEMA);
      expect((await sentBody(adapter, "m", requests, { ...base, response_format: { type: "json_object" } })).response_format).toEqual(jsonObject);
      const plain = await sentBody(adapter, "m", requests, base);
      expect(plain).not.toHaveProperty("response_format");
      expect(plain).not.toHaveProperty("tools");
      const withTools = await sentBody(adapter, "m", requests, { ...base, tools: [WEATHER], tool_choice: { type: "function", function: { name: "get_weather" } }, parallel_tool_calls: false });
      expect(withTools).toMatchObject({ tools: [WEATHER], tool_choice: { type: "function", function: { name: "get_weather" } }, parallel_tool_calls: false });
      // Log-probabilities for the checks go with every answer but a tool call (llama-server refuses them on a streamed
      // tool job); a client's own ask still goes.
      expect(plain).toMatchObject({ logprobs: true });
      expect(withTools).not.toHaveProperty("logprobs");
      expect(await sentBody(adapter, "m", requests, { ...base, tools: [WEATHER], logprobs: true })).toMatchObject({ logprobs: true });
    } finally {
      await fake.http.close();
    }
  });
});

describe("ollama is sent format and tools in its native API", () => {
  it("format json / the schema; tools (none sends none); a call history with arguments as objects and tool_name", async () => {
    const fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 1 }] });
    try {
      const adapter = createOllamaAdapter({ baseURL: fake.url });
      const requests = () => fake.http.requests.filter((r) => r.path === "/api/chat");
      expect((await sentBody(adapter, "qwen2.5:7b", requests, { ...base, response_format: JSON_SCHEMA })).format).toEqual(SCHEMA);
      expect((await sentBody(adapter, "qwen2.5:7b", requests, { ...base, response_format: { type: "json_object" } })).format).toBe("json");
      expect(await sentBody(adapter, "qwen2.5:7b", requests, { ...base, tools: [WEATHER], tool_choice: "none" })).not.toHaveProperty("tools");
      expect((await sentBody(adapter, "qwen2.5:7b", requests, { ...base, tools: [WEATHER] })).tools).toEqual([WEATHER]);
      const history = [
        { role: "user" as const, content: "Weather?" },
        { role: "assistant" as const, content: "", tool_calls: [{ id: "c1", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
        { role: "tool" as const, content: "4C", tool_call_id: "c1" },
      ];
      for await (const _p of adapter.doStream({ model: "qwen2.5:7b", messages: history, sampling: base })) void _p;
      expect((requests().at(-1)!.body as { messages: unknown[] }).messages).toEqual([
        { role: "user", content: "Weather?" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Oslo" } } }] },
        { role: "tool", content: "4C", tool_name: "get_weather" },
      ]);
    } finally {
      await fake.http.close();
    }
  });

  it("parallel_tool_calls false keeps only the first call Ollama makes; calls are numbered across lines", () => {
    const two = [{ function: { name: "a", arguments: { x: 1 } } }, { function: { name: "b", arguments: {} } }];
    expect(toolCallPieces(two, 0, true)).toEqual([{ index: 0, name: "a", arguments: '{"x":1}' }, { index: 1, name: "b", arguments: "{}" }]);
    expect(toolCallPieces(two, 0, false)).toEqual([{ index: 0, name: "a", arguments: '{"x":1}' }]);
    expect(toolCallPieces(two, 1, false)).toEqual([]);
    expect(toolCallPieces([{ function: { arguments: {} } }, "junk"], 3, true)).toEqual([]);
});
});

describe("continuing a constrained answer another node began", () => {
  it("is refused by HTTP backends (their grammar would restart after the prefix), before any request", async () => {
    const fake = await startFakeOpenAICompatible({ flavour: "vllm", models: ["m"] });
    const ollama = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 1 }] });
    try {
      const cases: [BackendAdapter, string][] = [
        [createVllmAdapter({ instances: [{ host: fake.url, model: "m" }] }), "m"],
        [createOllamaAdapter({ baseURL: ollama.url }), "qwen2.5:7b"],
      ];
      for (const [adapter, model] of cases) {
        for (const sampling of [{ ...base, response_format: { type: "json_object" as const } }, { ...base, tools: [WEATHER] }]) {
          const parts = [];
          for await (const p of adapter.doStream({ model, messages, sampling, assistantPrefix: '{"a":' })) parts.push(p);
          expect(parts).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringMatching(/cannot continue an answer constrained by (response_format|tools)/) }]);
        }
        // Tools offered but not callable constrain nothing: the continuation goes ahead.
        const free = [];
        for await (const p of adapter.doStream({ model, messages, sampling: { ...base, tools: [WEATHER], tool_choice: "none" }, assistantPrefix: "Hel" })) free.push(p);
        expect(free.at(-1)).toEqual({ type: "finish", reason: "stop" });
      }
      expect(fake.http.requests.filter((r) => r.path === "/v1/chat/completions")).toHaveLength(1);
    } finally {
      await fake.http.close();
      await ollama.http.close();
    }
  });
});

describe("a continuation with the job's prompt ids and tools, tool turns or response_format", () => {
  it("is declined with unsupported_parameter naming prompt_tokens by every backend that does not write tools Tessera's way, before any request", async () => {
    // vLLM and SGLang run them (vllm-sglang-canonical-tools.test.ts).
    const flavoured = await Promise.all((["max", "llama-swap"] as const).map((flavour) => startFakeOpenAICompatible({ flavour, models: ["m"] })));
    const [max, swap] = flavoured as [Awaited<ReturnType<typeof startFakeOpenAICompatible>>, ...Awaited<ReturnType<typeof startFakeOpenAICompatible>>[]];
    const ollama = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 1 }] });
    try {
      const cases: [BackendAdapter, string][] = [
        [createMaxAdapter({ baseURL: max.url }), "m"],
        [createLlamaServerAdapter({ baseURL: swap!.url, swap: true }), "m"],
        [createOllamaAdapter({ baseURL: ollama.url }), "qwen2.5:7b"],
      ];
      const history = [
        { role: "user" as const, content: "Weather?" },
        { role: "assistant" as const, content: "", tool_calls: [{ id: "c1", type: "function" as const, function: { name: "get_weather", arguments: "{}" } }] },
        { role: "tool" as const, content: "4C", tool_call_id: "c1" },
      ];
      for (const [adapter, model] of cases) {
        for (const job of [
          { messages, sampling: { ...base, tools: [WEATHER] } },
          { messages: history, sampling: base },
          { messages, sampling: { ...base, response_format: JSON_SCHEMA } },
          { messages, sampling: { ...base, response_format: { type: "json_object" as const } }, assistantPrefix: '{"a":', assistantPrefixTokens: [5, 6] },
        ]) {
          const parts = [];
          for await (const p of adapter.doStream({ model, ...job, promptTokens: [1, 2, 3] })) parts.push(p);
          expect(parts, adapter.kind).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringContaining("prompt_tokens") }]);
          await expect(adapter.doGenerate({ model, ...job, promptTokens: [1, 2, 3] }), adapter.kind).rejects.toMatchObject({ code: "unsupported_parameter" });
        }
      }
      const generation = /\/v1\/(chat\/)?completions|\/generate|\/api\/(chat|generate)/;
      for (const fake of [...flavoured, ollama]) expect(fake.http.requests.filter((r) => generation.test(r.path))).toEqual([]);
    } finally {
      for (const fake of [...flavoured, ollama]) await fake.http.close();
    }
  });
});
