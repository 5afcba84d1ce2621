/**
 * Row types as Kysely sees them, identical on both dialects. Times are epoch milliseconds (`bigint` columns, read back
 * as numbers), JSON is text, booleans are 0/1. Must match migrations/.
 */
export interface NodesTable {
  id: string;
  version: string;
  hardware: string;
  models: string;
  max_concurrency: number;
  status: string;
  registered_at: number;
  updated_at: number;
  status_changed_at: number;
  last_seen_at: number | null;
  last_heartbeat_at: number | null;
  gpus: string;
  loaded_models: string;
  active_jobs: number;
  draining: number;
}

export interface JobsTable {
  id: string;
  owner_id: string;
  model: string;
  status: string;
  messages: string | null;
  prompt_sha256: string;
  sampling: string;
  node_id: string | null;
  content: string | null;
  output_sha256: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  error: string | null;
  error_message: string | null;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  latency_ms: number | null;
  content_expires_at: number | null;
}

export interface JobSegmentsTable {
  job_id: string;
  seq: number;
  node_id: string;
  completion_tokens: number;
  started_at: number;
  ended_at: number;
}

export interface ApiKeysTable {
  id: string;
  name: string;
  token_sha256: string;
  rate_limit_per_minute: number;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface NodeModelMetricsTable {
  node_id: string;
  model: string;
  tokens_per_second: number;
  ttft_ms: number;
  samples: number;
  updated_at: number;
}

export interface NodeCommandsTable {
  id: string;
  node_id: string;
  type: string;
  model: string;
  status: string;
  progress: number | null;
  error: string | null;
  issued_at: number;
  updated_at: number;
}

export interface Database {
  nodes: NodesTable;
  jobs: JobsTable;
  job_segments: JobSegmentsTable;
  api_keys: ApiKeysTable;
  node_model_metrics: NodeModelMetricsTable;
  node_commands: NodeCommandsTable;
}
