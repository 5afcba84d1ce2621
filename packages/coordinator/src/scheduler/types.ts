import type { ModelFeature } from "@tessera/protocol";

/**
 * Inputs and outputs of the pure scheduler. The registry builds `NodeSnapshot`s from its live records and the
 * measurements it keeps; `pick` only reads them.
 */

/** What the coordinator has measured for one (node, model) pair. A field is absent until a real job measured it. */
export interface ModelPerf {
  /**
   * EWMA of the solo-equivalent decode rate, tokens per second per stream: the per-stream rate a job saw multiplied
   * by the mean number of jobs the node ran meanwhile. The scorer applies queue depth itself, so a loaded rate here
   * would count the load twice.
   */
  tokensPerSecond?: number;
  /**
   * EWMA of the solo-equivalent node-side time to first token in ms: push-to-first-token as the coordinator saw it,
   * minus the session RTT, divided by the mean number of jobs the node ran meanwhile (same reason as above).
   */
  ttftMs?: number;
}

export interface NodeSnapshot {
  id: string;
  online: boolean;
  draining: boolean;
  /** Failed verification: gets no work until cleared. */
  quarantined: boolean;
  /** Model names the node serves. */
  models: readonly string[];
  /** What the node can do with each model it serves (protocol model-features.ts); a model absent here: chat only. */
  modelFeatures?: Readonly<Record<string, ReadonlySet<ModelFeature> | undefined>>;
  /**
   * SHA-256 of each served model's file, where the node reported one (a model absent here: no file known). Built once
   * per registration or heartbeat that changes the node's models, not per decision.
   */
  modelFiles?: Readonly<Record<string, string | undefined>>;
  /** Jobs pushed to the node and not yet finished. */
  activeJobs: number;
  /** Per-node concurrency limit from its latest heartbeat (≥ 1). */
  maxConcurrency: number;
  /** Round-trip time of the node's session in ms; undefined until measured. */
  rttMs?: number;
  /** 1.0 is neutral; lower means worse verification / completion history. Clamped to ≥ 0.01. */
  reputation: number;
  /** In a routing cooldown after a failed or timed-out job: ranked after every candidate that is not. */
  coolingDown?: boolean;
  /** Measurements per model name. */
  perf: Readonly<Record<string, ModelPerf | undefined>>;
  /** Prefix hashes (e.g. of the system prompt) this node recently served, with when it last used each (ms). */
  recentPrefixes?: ReadonlyMap<string, number>;
}

export interface JobRequirements {
  model: string;
  /** What the node's model must offer; a node whose model lacks one counts as not serving the model. */
  features?: readonly ModelFeature[];
  /** The client asked for this node (`node_id`): only it may run the job. */
  pinnedNodeId?: string;
  /** Estimated prompt tokens (used by the TTFT prior). */
  promptTokens: number;
  maxTokens: number;
  /** Hash of the reusable prefix (system prompt); absent when the request has none. */
  prefixHash?: string;
  /**
   * A continuation's model file: the SHA-256 of the file the text so far came from (design.md "Continuations"). Nodes
   * holding it rank first, nodes reporting no file next, nodes with another file last. Absent: files play no part.
   */
  modelSha256?: string;
}

/** How a candidate's model file relates to the job's `modelSha256` (absent when the job names none). */
export type FileMatch = "same" | "unknown" | "other";

export interface ScoreWeights {
  ttftWeight: number;
  completionWeight: number;
  /** Slowdown per active job: load = 1 + queueWeight · activeJobs. */
  queueWeight: number;
  /** Exponent on reputation: cost / reputation^reputationWeight. */
  reputationWeight: number;
  /** Fraction of node-side TTFT saved when the node holds the job's prefix. */
  affinityDiscount: number;
  /** A prefix last used longer ago than this is assumed evicted. */
  prefixTtlMs: number;
  /** At or above this activeJobs / maxConcurrency the affinity discount is off (the node is overloaded). */
  affinityMaxLoad: number;
}

export interface Priors {
  /** Used when no candidate has measured tokens/s for the model. */
  tokensPerSecond: number;
  /** Prefill rate for the TTFT prior: ttft = promptTokens / prefillTokensPerSecond · 1000 + ttftBaseMs. */
  prefillTokensPerSecond: number;
  ttftBaseMs: number;
  /** Session RTT assumed when unmeasured (Petals assumes 0.15 s one way). */
  rttMs: number;
}

export interface PickOptions {
  /** Nodes that already failed this job. */
  exclude?: ReadonlySet<string>;
  weights?: Partial<ScoreWeights>;
  priors?: Partial<Priors>;
  /** How many of the best candidates to return with their terms (default 10; the winner is always included). */
  explainTop?: number;
}

/** Why a node was filtered out; also the reason reported when a stage leaves no candidate. */
export type FilterReason =
  | "offline"
  | "model_not_served"
  | "not_pinned"
  | "quarantined"
  | "draining"
  | "excluded"
  | "busy";

export type NoCandidateReason =
  | "no_node_online"
  | "no_node_serves_model"
  | "pinned_node_unavailable"
  | "all_quarantined"
  | "all_draining"
  | "all_excluded"
  | "all_busy";

/** One scored candidate, for logs. All times in ms. */
export interface CandidateScore {
  nodeId: string;
  cost: number;
  ttftMs: number;
  completionMs: number;
  rttMs: number;
  load: number;
  tokensPerSecond: number;
  speedSource: "measured" | "prior";
  ttftSource: "measured" | "prior";
  affinity: boolean;
  reputation: number;
  coolingDown: boolean;
  /** Only when the job names a model file (a continuation): whether this node holds it. */
  file: FileMatch | undefined;
}

export type PickResult =
  | {
      ok: true;
      nodeId: string;
      /** The best `explainTop` candidates with their terms, best first. */
      candidates: CandidateScore[];
      /** How many nodes passed the filters. */
      candidateCount: number;
      rejected: Record<FilterReason, number>;
    }
  | {
      ok: false;
      reason: NoCandidateReason;
      /** A sentence for the client and the log. */
      message: string;
      rejected: Record<FilterReason, number>;
    };
