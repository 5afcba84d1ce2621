import { startFakeOllama } from "@tessera/testkit";
import { createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";
import { adapterContract } from "./adapter-contract.js";

adapterContract("ollama", {
  start: async () => {
    const fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 4_683_087_332 }] });
    return {
      adapter: createOllamaAdapter({ baseURL: fake.url }),
      model: "qwen2.5:7b",
      setBehaviour: (p) => fake.http.setBehaviour(p),
      goDown: () => fake.http.goDown(),
      comeBack: () => fake.http.comeBack(),
      close: () => fake.http.close(),
    };
  },
  assistantPrefix: "continues",
  rejectsUnknownModel: true,
  forcesToolCalls: false,
});

/** The same contract for a model whose chats run as canonical text through `/api/generate` raw (canonical-chat.ts). */
adapterContract("ollama (canonical prompt, raw /api/generate)", {
  start: async () => {
    const chatTemplate = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    const fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 4_683_087_332, chatTemplate }] });
    return {
      adapter: createOllamaAdapter({ baseURL: fake.url }),
      model: "qwen2.5:7b",
      setBehaviour: (p) => fake.http.setBehaviour(p),
      goDown: () => fake.http.goDown(),
      comeBack: () => fake.http.comeBack(),
      close: () => fake.http.close(),
    };
  },
  assistantPrefix: "continues",
  rejectsUnknownModel: true,
  forcesToolCalls: false,
});
