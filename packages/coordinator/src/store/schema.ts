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
  /** The operator the node counts under (its own id without a delegation). */
  operator_id: string | null;
  delegation_expires_at: number | null;
  /** Set when a successor key registered with this key's signed hand-over; accepted until the grace ends. */
  retired_at: number | null;
  successor_id: string | null;
  /** The replica holding the node's session while it is online (migration 0010); null otherwise. */
  held_by: string | null;
}

export interface OperatorsTable {
  id: string;
  status: string;
  admitted_via: string;
  join_token_id: string | null;
  created_at: number;
  status_changed_at: number;
  status_reason: string | null;
}

export interface QuarantineReleasesTable {
  node_id: string;
  requested_at: number;
  reason: string | null;
}

export interface JoinTokensTable {
  id: string;
  token_sha256: string;
  note: string | null;
  max_uses: number;
  uses: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
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
  /** The coordinator replica that owns the job; `null` on rows written before replicas (migration 0008). */
  replica_id: string | null;
}

/** One live coordinator replica's lease (migration 0008). */
export interface CoordinatorReplicasTable {
  id: string;
  instance: string;
  address: string;
  started_at: number;
  last_seen_at: number;
}

/** A signed node request's nonce, refused on every replica until `expires_at` (migration 0008). */
export interface NodeNoncesTable {
  node_key: string;
  nonce: string;
  expires_at: number;
}

export interface JobSegmentsTable {
  job_id: string;
  seq: number;
  node_id: string;
  completion_tokens: number;
  started_at: number;
  ended_at: number;
  result_commitment: string | null;
  result_signature: string | null;
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

/** A node's standing (trust/node-standing.ts): the completion window, P(cheat) as log-odds, checks, cooldown, quarantine. */
export interface NodeStandingTable {
  node_id: string;
  operator_id: string;
  outcomes: string;
  cheat_log_odds: number;
  checks_passed: number;
  checks_failed: number;
  cooldown_until: number | null;
  offence_streak: number;
  last_offence_at: number | null;
  quarantined_at: number | null;
  updated_at: number;
}

/** Jobs an operator's nodes have completed: probation ends at 200. */
export interface OperatorStandingTable {
  operator_id: string;
  completed_jobs: number;
  updated_at: number;
}

/** A value every replica sharing the database agrees on (migration 0009). */
export interface CoordinatorSettingsTable {
  key: string;
  value: string;
}

export interface Database {
  nodes: NodesTable;
  operators: OperatorsTable;
  join_tokens: JoinTokensTable;
  quarantine_releases: QuarantineReleasesTable;
  jobs: JobsTable;
  coordinator_replicas: CoordinatorReplicasTable;
  node_nonces: NodeNoncesTable;
  coordinator_settings: CoordinatorSettingsTable;
  job_segments: JobSegmentsTable;
  api_keys: ApiKeysTable;
  node_model_metrics: NodeModelMetricsTable;
  node_commands: NodeCommandsTable;
  node_standing: NodeStandingTable;
  operator_standing: OperatorStandingTable;
  ledger_transactions: LedgerTransactionsTable;
  ledger_entries: LedgerEntriesTable;
  ledger_balances: LedgerBalancesTable;
  receipts: ReceiptsTable;
  payout_addresses: PayoutAddressesTable;
  payout_requests: PayoutRequestsTable;
  payout_batches: PayoutBatchesTable;
  payout_items: PayoutItemsTable;
}

export interface LedgerTransactionsTable {
  id: string;
  idempotency_key: string;
  kind: string;
  job_id: string | null;
  memo: string | null;
  created_at: number;
}

export interface LedgerEntriesTable {
  transaction_id: string;
  seq: number;
  account: string;
  amount: number;
}

export interface LedgerBalancesTable {
  account: string;
  balance: number;
  updated_at: number;
}

export interface ReceiptsTable {
  id: string;
  job_id: string;
  segment: number;
  node_id: string;
  operator_id: string;
  client_key_id: string;
  model: string;
  model_sha256: string | null;
  input_tokens: number;
  output_tokens: number;
  price_input_per_1k: number;
  price_output_per_1k: number;
  amount: number;
  fee: number;
  reward: number;
  output_sha256: string;
  result_commitment: string | null;
  completed_at: number;
  hold_until: number;
  status: string;
  status_changed_at: number;
  payout_batch_id: string | null;
  platform_key: string;
  platform_signature: string;
  node_signature: string | null;
}

export interface PayoutAddressesTable {
  operator_id: string;
  chain: string;
  address: string;
  updated_at: number;
}

export interface PayoutRequestsTable {
  operator_id: string;
  requested_at: number;
}

export interface PayoutBatchesTable {
  id: string;
  chain: string;
  status: string;
  total: number;
  tx_hash: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
}

export interface PayoutItemsTable {
  batch_id: string;
  operator_id: string;
  address: string;
  amount: number;
}
