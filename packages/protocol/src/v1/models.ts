/** `GET /api/v1/models`: one entry per model that at least one online node serves. */
export interface ModelEntry {
  id: string;
  nodes: number;
  /** Mean of the serving nodes' measured tokens/s; null until a job has been measured. */
  avg_tokens_per_second: number | null;
  /** What a client pays: micro-USDC (1e-6 USDC) per 1,000 input and output tokens (0: free). */
  price: { currency: "USDC"; unit: "micro_per_1k_tokens"; input: number; output: number };
  /**
   * Present when the model is served layer-split across nodes (a sharded model's pipeline, docs/sharding.md);
   * absent when every serving node holds it whole.
   */
  sharded?: ShardedModelInfo;
}

export interface ShardedModelInfo {
  /** Stages a request runs through now (one node each); null while the offering nodes cannot hold every layer. */
  stages: number | null;
  /** Its transformer layers, split between the stages. */
  layers: number;
  /** Nodes that hold a span of its layers (replicas included). */
  nodes: number;
  /** Every stage of that chain has loaded its layers (false: still loading). */
  ready: boolean;
}

export interface ModelsResponse {
  models: ModelEntry[];
}
