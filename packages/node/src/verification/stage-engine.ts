/**
 * The stage runtime as a verification engine: one Stage holding every layer of the file.
 * Scoring is one batched evaluation; the stage gives bit-identical logits batched or one token at a time (see
 * ../stage/design.md), so scoring a generation on the same engine reproduces the generation's own numbers exactly.
 */
import { TesseraError } from "@tessera/protocol";
import { openGguf } from "../stage/gguf-reader.js";
import { readModelConfig } from "../stage/model-info.js";
import { loadStage, type Stage } from "../stage/stage.js";
import { denseRow, greedyStep, scoreRows } from "./score-rows.js";
import type { Generation, GenerateOptions, ReferenceScores, VerificationEngine } from "./types.js";

export interface StageEngineOptions {
  path: string;
  /** Longest prompt + output accepted (default: the model's context length). */
  maxContext?: number;
}

function eosTokenOf(path: string): number {
  const file = openGguf(path);
  try {
    const v = file.metadata.get("tokenizer.ggml.eos_token_id");
    if (typeof v !== "number" && typeof v !== "bigint") throw new TesseraError("bad_request", `${path}: metadata tokenizer.ggml.eos_token_id is missing`);
    return Number(v);
  } finally {
    file.close();
  }
}

let nextRequest = 0;

export function createStageEngine(options: StageEngineOptions): VerificationEngine {
  const { nLayer } = readModelConfig(options.path);
  const stage = loadStage({ path: options.path, start: 0, end: nLayer, maxContext: options.maxContext });
  return stageEngine(stage, eosTokenOf(options.path));
}

/** Wraps an already loaded whole-model stage (tests share one between engines). */
export function stageEngine(stage: Stage, eosToken: number): VerificationEngine {
  if (!stage.isFirst || !stage.isLast) throw new TesseraError("bad_request", "a verification engine needs a stage holding every layer");
  const vocab = stage.vocabSize;
  return {
    kind: "stage",
    eosToken,
    vocabSize: vocab,
    async score(prompt, output): Promise<ReferenceScores> {
      if (prompt.length === 0) throw new TesseraError("bad_request", "scoring needs at least one prompt token");
      const id = `verify-${nextRequest++}`;
      try {
        const p = prompt.length;
        // The head runs only on the rows that predict output positions: the prompt minus its last token first
        // (its logits unused), then the last prompt token and the output with logits for every row.
        if (p > 1) stage.forward(id, prompt.slice(0, p - 1), prompt.slice(0, p - 1).map((_, i) => i));
        const tail = [prompt[p - 1], ...output];
        const rows = stage.forward(id, tail, tail.map((_, i) => p - 1 + i), { logits: "all" });
        return scoreRows(p, output, eosToken, (i) => denseRow(rows.subarray(i * vocab, (i + 1) * vocab)));
      } finally {
        stage.dropRequest(id);
      }
    },
    async generate(prompt, opts: GenerateOptions): Promise<Generation> {
      if (prompt.length === 0) throw new TesseraError("bad_request", "generation needs at least one prompt token");
      const k = opts.topLogprobs ?? 5;
      const id = `verify-${nextRequest++}`;
      const out: Generation = { tokens: [], finishReason: "length", logprobs: [], promptTokens: prompt.length };
      try {
        let row = stage.forward(id, prompt, prompt.map((_, i) => i));
        for (let i = 0; i < opts.maxTokens; i++) {
          const step = greedyStep(denseRow(row), k);
          if (step.token === eosToken) {
            out.finishReason = "stop";
            break;
          }
          out.tokens.push(step.token);
          out.logprobs.push(step);
          if (i === opts.maxTokens - 1) break;
          row = stage.forward(id, [step.token], [prompt.length + i]);
        }
        return out;
      } finally {
        stage.dropRequest(id);
      }
    },
    async close() {},
  };
}
