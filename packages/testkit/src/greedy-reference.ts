import type { ChatMessage } from "@tessera/protocol";
import { createPromptFormatter, rawPromptTokens } from "@tessera/node/embedded";
import { getLlama, type Llama, LlamaLogLevel, type Token } from "node-llama-cpp";

/**
 * What node-llama-cpp produces greedily, in-process, on a model file: the reference end-to-end tests compare the
 * network's output with. It shares only the prompt formatting with the embedded backend (so both see the same
 * tokens); the token loop and the text decoding are independent of the adapter's streaming code.
 */
export interface GreedyReferenceOptions {
  modelPath: string;
  messages: ChatMessage[];
  /** Feed `messages[0].content` as a raw prompt, with no chat template (what `/v1/completions` runs). */
  rawPrompt?: boolean;
  /** Evaluate exactly these prompt token ids (BOS included if wanted); `messages` and `rawPrompt` are then ignored. */
  promptTokens?: number[];
  maxTokens: number;
  /** llama.cpp threads (default 1: tests run on small shared machines). */
  threads?: number;
  /**
   * Run on this llama.cpp build, every layer on its GPU (node-llama-cpp's Vulkan build, say), instead of the CPU build
   * loaded for the call. The caller disposes of it.
   */
  onGpu?: Llama;
}

export interface GreedyReference {
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** Generated token ids, end-of-generation token excluded. */
  tokens: number[];
}

export async function greedyReference(options: GreedyReferenceOptions): Promise<GreedyReference> {
  const llama = options.onGpu ?? (await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }));
  try {
    const model = await llama.loadModel({ modelPath: options.modelPath, ...(options.onGpu ? { gpuLayers: "max" as const } : {}) });
    try {
      const prompt = options.promptTokens ? (options.promptTokens as Token[]) : options.rawPrompt ? rawPromptTokens(model, options.messages[0]!.content) : createPromptFormatter(model).promptTokens(options.messages);
      const context = await model.createContext({
        contextSize: Math.min(model.trainContextSize, 4096),
        sequences: 1,
        threads: options.threads ?? 1,
      });
      const tokens: number[] = [];
      try {
        const sequence = context.getSequence();
        for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
          if (model.isEogToken(token)) break;
          tokens.push(token);
          if (tokens.length >= options.maxTokens || sequence.nextTokenIndex >= context.contextSize) break;
        }
      } finally {
        await context.dispose();
      }
      const text = model.detokenize(tokens as Token[], false, prompt.slice(-16));
      return { text, promptTokens: prompt.length, completionTokens: tokens.length, tokens };
    } finally {
      await model.dispose();
    }
  } finally {
    if (!options.onGpu) await llama.dispose();
  }
}
