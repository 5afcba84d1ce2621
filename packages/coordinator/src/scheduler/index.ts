export { fileMatch, pick } from "./pick-node.js";
export { resolveModel, MAX_LISTED_MODELS, type ResolveModelResult } from "./resolve-model.js";
export { errorCodeForNoCandidate, isWaitable, noCandidateMessage, FILTER_STAGES } from "./no-candidate.js";
export { ewma, EWMA_ALPHA } from "./ewma.js";
export { DEFAULT_WEIGHTS, DEFAULT_PRIORS, DEFAULT_EXPLAIN_TOP, MIN_REPUTATION } from "./defaults.js";
export type {
  CandidateScore,
  FileMatch,
  FilterReason,
  JobRequirements,
  ModelPerf,
  NodeSnapshot,
  NoCandidateReason,
  PickOptions,
  PickResult,
  Priors,
  ScoreWeights,
} from "./types.js";
