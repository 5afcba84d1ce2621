/**
 * Prompt tokens for a sharded request, exactly as the embedded backend would build them: a vocab-only llama.cpp
 * model (no weights) and the embedded backend's prompt formatter. Loaded lazily, on the first tokenize.
 */
import type { ChatMessage } from "@tessera/protocol";
import { createPromptFormatter, type PromptFormatter } from "../backends/embedded/prompt-format.js";

export interface PromptTokenizer {
  tokenize(messages: readonly ChatMessage[]): number[];
  eogTokens(): number[];
  close(): Promise<void>;
}

export async function loadPromptTokenizer(modelPath: string, vocabSize: number): Promise<PromptTokenizer> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath, vocabOnly: true });
  const formatter: PromptFormatter = createPromptFormatter(model);
  let eog: number[] | undefined;
  return {
    tokenize: (messages) => formatter.promptTokens(messages).map(Number),
    eogTokens() {
      if (!eog) {
        eog = [];
        for (let t = 0; t < vocabSize; t++) if (model.isEogToken(t as never)) eog.push(t);
      }
      return eog;
    },
    async close() {
      await model.dispose();
      await llama.dispose();
    },
  };
}
