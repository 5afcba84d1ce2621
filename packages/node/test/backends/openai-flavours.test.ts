import { startFakeOpenAICompatible, type FakeOpenAICompatible, type OpenAIFlavourName } from "@tessera/testkit";
import type { BackendAdapter } from "../../src/backends/adapter.js";
import { createLlamaServerAdapter } from "../../src/backends/llama-server/llama-server-adapter.js";
import { createMaxAdapter } from "../../src/backends/max/max-adapter.js";
import { createOpenAICompatibleAdapter } from "../../src/backends/openai-compatible/openai-compatible-adapter.js";
import { createSglangAdapter } from "../../src/backends/sglang/sglang-adapter.js";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";
import { adapterContract, type ContractSubject } from "./adapter-contract.js";

const MODEL = "Qwen/Qwen2.5-7B-Instruct";

function subject(fake: FakeOpenAICompatible, adapter: BackendAdapter, model: string): ContractSubject {
  return {
    adapter,
    model,
    setBehaviour: (p) => fake.http.setBehaviour(p),
    goDown: () => fake.http.goDown(),
    comeBack: () => fake.http.comeBack(),
    close: () => fake.http.close(),
  };
}

async function pair(flavour: OpenAIFlavourName, make: (url: string) => BackendAdapter, model = MODEL) {
  const fake = await startFakeOpenAICompatible({ flavour, models: [model] });
  return subject(fake, make(fake.url), model);
}

adapterContract("openai-compatible (generic, vLLM server)", {
  start: () => pair("vllm", (baseURL) => createOpenAICompatibleAdapter({ baseURL, assistantPrefix: "continue-final-message" })),
  assistantPrefix: "continues",
  rejectsUnknownModel: true,
  forcesToolCalls: true,
});
adapterContract("vllm", {
  start: () => pair("vllm", (host) => createVllmAdapter({ instances: [{ host, model: MODEL }] })),
  assistantPrefix: "continues",
  rejectsUnknownModel: true,
  forcesToolCalls: true,
});
adapterContract("sglang", {
  start: () => pair("sglang", (baseURL) => createSglangAdapter({ baseURL })),
  assistantPrefix: "continues",
  rejectsUnknownModel: true,
  forcesToolCalls: true,
});
adapterContract("max", {
  start: () => pair("max", (baseURL) => createMaxAdapter({ baseURL })),
  assistantPrefix: "refuses",
  rejectsUnknownModel: true,
  forcesToolCalls: true,
});
adapterContract("llama-server", {
  start: () => pair("llama-server", (baseURL) => createLlamaServerAdapter({ baseURL }), "qwen2.5-7b-instruct-q4_k_m"),
  assistantPrefix: "continues",
  rejectsUnknownModel: false,
  forcesToolCalls: true,
});
adapterContract("llama-swap", {
  start: () => pair("llama-swap", (baseURL) => createLlamaServerAdapter({ baseURL, swap: true }), "qwen2.5-7b"),
  assistantPrefix: "continues",
  rejectsUnknownModel: true,
  forcesToolCalls: true,
});
