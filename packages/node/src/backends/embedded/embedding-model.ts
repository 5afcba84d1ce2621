import { type EmbeddingInputList, MAX_EMBEDDING_VALUES, TesseraError } from "@tessera/protocol";
import { type LlamaEmbeddingContext, type LlamaModel, type Token, readGgufFileInfo } from "node-llama-cpp";
import type { EmbeddingResult } from "../adapter.js";

/**
 * Embeddings on the embedded engine (node-llama-cpp 3.22's embedding context). See design.md "Embedding models".
 *
 * A GGUF file is an embedding model when its metadata names a pooling type (`<architecture>.pooling_type`, llama.cpp's
 * LLAMA_POOLING_TYPE: 1 mean, 2 cls, 3 last, 4 rank): that is what embedding conversions (BERT, nomic-bert, the
 * Qwen3 and GTE embedding models) write and what llama.cpp pools the hidden states by. Such a file is served for
 * `/v1/embeddings` only; any other file is a generative model, served for chat only.
 */
export async function isEmbeddingModelFile(modelPath: string): Promise<boolean> {
  const info = await readGgufFileInfo(modelPath, {
    readTensorInfo: false,
    logWarnings: false,
    // The vocabulary is most of a small file's metadata and says nothing here.
    ignoreKeys: ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"],
  });
  const metadata = info.metadata as unknown as Record<string, unknown> & { general?: { architecture?: string } };
  const arch = metadata.general?.architecture;
  const pooling = arch ? (metadata[arch] as { pooling_type?: unknown } | undefined)?.pooling_type : undefined;
  return typeof pooling === "number" && pooling > 0;
}

export interface EmbeddingRunner {
  embed(input: EmbeddingInputList, signal?: AbortSignal): Promise<EmbeddingResult>;
  dispose(): Promise<void>;
}

/**
 * One embedding context on a loaded model, made on the first request. Inputs run one after another (node-llama-cpp's
 * embedding context evaluates one sequence at a time). Every vector is L2-normalised, as OpenAI's and llama-server's
 * are, so a dot product is the cosine similarity; the token count is what was evaluated (special tokens included).
 */
export function createEmbeddingRunner(options: { model: LlamaModel; threads: number; contextSize: number; vocabularySize: number }): EmbeddingRunner {
  const { model, threads, contextSize, vocabularySize } = options;
  let context: Promise<LlamaEmbeddingContext> | undefined;
  const dimension = model.embeddingVectorSize;

  function ensureContext(): Promise<LlamaEmbeddingContext> {
    if (!context) {
      context = model.createEmbeddingContext({ contextSize, threads });
      context.catch(() => (context = undefined));
    }
    return context;
  }

  return {
    async embed(input, signal) {
      const items: Array<string | Token[]> = "texts" in input ? input.texts : (input.tokens as Token[][]);
      if (items.length * dimension > MAX_EMBEDDING_VALUES) {
        throw new TesseraError(
          "bad_request",
          `${items.length} inputs of this model's ${dimension} dimensions exceed ${MAX_EMBEDDING_VALUES} numbers; send at most ${Math.floor(MAX_EMBEDDING_VALUES / dimension)} inputs`,
          { param: "input" },
        );
      }
      if ("tokens" in input) {
        for (const [i, tokens] of input.tokens.entries()) {
          const bad = tokens.find((t) => t >= vocabularySize);
          if (bad !== undefined) throw new TesseraError("bad_request", `input.${i}: token id ${bad} is outside this model's vocabulary of ${vocabularySize}`, { param: "input" });
        }
      }
      const ctx = await ensureContext();
      const vectors: Float32Array[] = [];
      let promptTokens = 0;
      for (const [i, item] of items.entries()) {
        if (signal?.aborted) throw new TesseraError("cancelled", "the embedding request was cancelled");
        const length = ctx.calculateInputLength(item);
        if (length >= contextSize) {
          throw new TesseraError("bad_request", `input.${i} is ${length} tokens; this model's context holds ${contextSize - 1}`, { param: "input" });
        }
        const embedding = await ctx.getEmbeddingFor(item);
        if (embedding.vector.length !== dimension) throw new TesseraError("internal_error", `the engine returned ${embedding.vector.length} numbers, not ${dimension}`);
        vectors.push(normalised(embedding.vector));
        promptTokens += length;
      }
      return { vectors, promptTokens };
    },
    async dispose() {
      const current = context;
      context = undefined;
      await current?.then((c) => c.dispose(), () => undefined);
    },
  };
}

/** The vector scaled to length 1 (a zero vector stays zero). */
function normalised(vector: readonly number[]): Float32Array {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  const out = Float32Array.from(vector);
  if (norm > 0 && Number.isFinite(norm)) for (let i = 0; i < out.length; i++) out[i] = out[i]! / norm;
  return out;
}
