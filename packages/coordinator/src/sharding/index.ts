export { ShardingManager, type ShardingOptions, type HeldStage, type ShardedModelSummary } from "./sharding-manager.js";
export type { StageRecord } from "./token-loop.js";
export { chooseStagePath, type LoadedStage, type StagePathResult } from "./stage-path.js";
export { Detokenizer, Vocab } from "./detokenizer.js";
export type { ShardedModel, StageState } from "./sharded-model.js";
