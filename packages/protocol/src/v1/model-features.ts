import { z } from "zod";
import type { Sampling } from "./sampling.js";
import { forcedToolName } from "./tools.js";

/**
 * What a node can do with one model, announced per model because it depends on the backend and on the file. The
 * scheduler sends a job only to a node whose model has every feature the job needs, so a request one backend cannot
 * honour runs on another node; when no online node can, the request is refused with a 400 naming the parameter.
 *
 * - `chat`: generates answers (a generative model; an embedding-only model lacks it);
 * - `raw_prompt`: generates from a raw text prompt with no chat template (`/v1/completions`);
 * - `response_format`: constrains the answer to JSON (`json_object`, `json_schema`);
 * - `tools`: offers tools to the model and returns its calls;
 * - `forced_tool_choice`: can force a call (`tool_choice` `required` or a named function);
 * - `logprobs`: returns each generated token's log-probability and the likeliest alternatives;
 * - `embeddings`: returns embedding vectors (`/v1/embeddings`).
 */
export const MODEL_FEATURES = ["chat", "raw_prompt", "response_format", "tools", "forced_tool_choice", "logprobs", "embeddings"] as const;
export const ModelFeature = z.enum(MODEL_FEATURES);
export type ModelFeature = z.infer<typeof ModelFeature>;
export const ModelFeatures = z.array(ModelFeature).max(MODEL_FEATURES.length);

/** What a model whose node names no features offers: chat answers, nothing more. */
export const DEFAULT_MODEL_FEATURES: readonly ModelFeature[] = Object.freeze(["chat"]);

export function featuresOf(model: { features?: readonly ModelFeature[] }): ReadonlySet<ModelFeature> {
  return new Set(model.features ?? DEFAULT_MODEL_FEATURES);
}

/** A feature a request needs, with the request parameter that needs it (what a refusal names). */
export interface NeededFeature {
  feature: ModelFeature;
  param: string;
}

/** What a generation job needs of its node's model, beyond `chat`: one entry per parameter that needs something. */
export function featuresNeeded(sampling: Sampling, options: { rawPrompt?: boolean } = {}): NeededFeature[] {
  const needed: NeededFeature[] = [{ feature: "chat", param: "model" }];
  if (options.rawPrompt) needed.push({ feature: "raw_prompt", param: "prompt" });
  if (sampling.response_format) needed.push({ feature: "response_format", param: "response_format" });
  if (sampling.tools && sampling.tools.length > 0 && sampling.tool_choice !== "none") {
    needed.push({ feature: "tools", param: "tools" });
    if (sampling.tool_choice === "required" || forcedToolName(sampling.tool_choice) !== undefined) needed.push({ feature: "forced_tool_choice", param: "tool_choice" });
  }
  if (sampling.logprobs) needed.push({ feature: "logprobs", param: "logprobs" });
  return needed;
}

/** True when the model offers every needed feature. */
export function offersAll(model: { features?: readonly ModelFeature[] }, needed: readonly NeededFeature[]): boolean {
  const offered = featuresOf(model);
  return needed.every((n) => offered.has(n.feature));
}

const FEATURE_WORDS: Record<ModelFeature, string> = {
  chat: "generate text",
  raw_prompt: "take a raw text prompt",
  response_format: "constrain its answer to JSON",
  tools: "call tools",
  forced_tool_choice: "force a tool call",
  logprobs: "return log-probabilities",
  embeddings: "compute embeddings",
};

/** "no node serving model X can return log-probabilities (logprobs)". */
export function unsupportedFeatureMessage(model: string, needed: NeededFeature): string {
  // A model that does not generate text is an embedding model (the only other kind a node announces).
  const hint = needed.feature === "chat" ? `; it is served for embeddings only, so use /v1/embeddings for it` : "";
  return `no node serving model "${model}" can ${FEATURE_WORDS[needed.feature]} (${needed.param})${hint}`;
}
