/** `GET /api/v1/models`: one entry per model that at least one online node serves. */
export interface ModelEntry {
  id: string;
  nodes: number;
  /** Mean of the serving nodes' measured tokens/s; null until a job has been measured. */
  avg_tokens_per_second: number | null;
  /** What a client pays: micro-USDC (1e-6 USDC) per 1,000 input and output tokens (0: free). */
  price: { currency: "USDC"; unit: "micro_per_1k_tokens"; input: number; output: number };
}

export interface ModelsResponse {
  models: ModelEntry[];
}
