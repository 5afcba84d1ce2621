/** `GET /api/v1/models`: one entry per model that at least one online node serves. */
export interface ModelEntry {
  id: string;
  nodes: number;
  /** Mean of the serving nodes' measured tokens/s; null until a job has been measured. */
  avg_tokens_per_second: number | null;
}

export interface ModelsResponse {
  models: ModelEntry[];
}
