export { ShardingManager, type ShardingOptions, type ShardingJobs, type BinarySession } from "./sharding-manager.js";
export { chooseStagePath, type LoadedStage, type StagePathResult } from "./stage-path.js";
export { Detokenizer, Vocab } from "./detokenizer.js";
export type { ShardedModel, StageState } from "./sharded-model.js";
