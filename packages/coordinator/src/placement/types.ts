/** A half-open layer range `[start, end)`. */
export interface LayerRange {
  start: number;
  end: number;
}

export interface PlacementNode {
  id: string;
  freeMemoryBytes: number;
  /** Bytes one layer of this model takes on this node (quantisation may differ); falls back to the input's default. */
  bytesPerLayer?: number;
  /** Measured compute time per layer per token, ms. */
  msPerLayer: number;
  /** Session round-trip time, ms. */
  rttMs: number;
}

export interface PlaceStagesInput {
  layerCount: number;
  nodes: readonly PlacementNode[];
  /** Copies of every layer wanted (1 = no redundancy). Default 2. */
  replicas?: number;
  /** Default bytes per layer for nodes that do not give their own; without either a node's memory is unconstrained. */
  bytesPerLayer?: number;
  /** Fraction of free memory kept for KV cache and activations. Default 0.1. */
  memoryHeadroom?: number;
}

/** One node's span in one replica chain. Every chain covers all layers exactly once. */
export interface StageAssignment extends LayerRange {
  nodeId: string;
  chain: number;
}

export type UnusedReason = "insufficient_memory" | "surplus";

export type PlaceStagesResult =
  | {
      ok: true;
      stages: StageAssignment[];
      replicasRequested: number;
      /** Fewer than requested when there were not enough nodes or memory for more complete chains. */
      replicasPlaced: number;
      /** Per chain: its slowest stage's time per token (ms), the chain's throughput bound. */
      chainBottleneckMs: number[];
      unused: Array<{ nodeId: string; reason: UnusedReason }>;
    }
  | {
      ok: false;
      reason: "insufficient_memory";
      /** The layers no placement can hold with these nodes. */
      missingLayers: LayerRange[];
      message: string;
      unused: Array<{ nodeId: string; reason: UnusedReason }>;
    };

/** A span of the layer map as `choosePath` reads it. */
export interface LayerMapSpan extends LayerRange {
  nodeId: string;
}

export interface PathCost {
  msPerLayer?: number;
  rttMs?: number;
}

/** One step of a path: run layers `[start, end)` on `nodeId`. */
export interface PathSegment extends LayerRange {
  nodeId: string;
}

export type ChoosePathResult =
  | { ok: true; segments: PathSegment[]; costMs: number }
  | { ok: false; reason: "uncovered_layers"; missingLayers: LayerRange[]; message: string };
