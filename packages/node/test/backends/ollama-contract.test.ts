import { startFakeOllama } from "@tessera/testkit";
import { createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";
import { adapterContract } from "./adapter-contract.js";

/** The adapter contract against the fake Ollama, its one model installed with `chatTemplate` when given. */
function ollamaContract(label: string, chatTemplate?: string): void {
  adapterContract(label, {
    start: async () => {
      const fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 4_683_087_332, ...(chatTemplate ? { chatTemplate } : {}) }] });
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
}

ollamaContract("ollama");

/** The same contract for a model whose chats run as canonical text through `/api/generate` raw (canonical-chat.ts). */
ollamaContract(
  "ollama (canonical prompt, raw /api/generate)",
  "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
);
