export { TOP_K_SCORED, type TokenLogprob, type PositionScore, type ReferenceScores, type GeneratedToken, type Generation, type GenerateOptions, type VerificationEngine } from "./types.js";
export { logSumExp, rankOf, topK } from "./log-softmax.js";
export { scoreRows, greedyStep } from "./score-rows.js";
export { createStageEngine, stageEngine, type StageEngineOptions } from "./stage-engine.js";
export { createEmbeddedEngine, type EmbeddedEngineOptions } from "./embedded-engine.js";
export { createLlamaServerEngine, type LlamaServerEngineOptions } from "./llama-server-engine.js";
