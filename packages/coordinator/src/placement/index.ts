export { placeStages, DEFAULT_REPLICAS, DEFAULT_MEMORY_HEADROOM } from "./place-stages.js";
export { choosePath, DEFAULT_PATH_RTT_MS, DEFAULT_MS_PER_LAYER, type ChoosePathOptions } from "./choose-path.js";
export { describeRanges, indicesToRanges } from "./layer-ranges.js";
export type {
  ChoosePathResult,
  LayerMapSpan,
  LayerRange,
  PathCost,
  PathSegment,
  PlacementNode,
  PlaceStagesInput,
  PlaceStagesResult,
  StageAssignment,
  UnusedReason,
} from "./types.js";
