import type { ChatMessage, ErrorCode, GpuStats, Hardware, JobStatus, Receipt, ReceiptStatus, Sampling, ServedModel } from "@tessera/protocol";

/** Where the store lives. SQLite is the default (one file); Postgres serves several coordinator replicas. */
export type StoreOptions = ({ sqlitePath: string } | { postgresUrl: string; schema?: string }) & StoreFileOptions;

/** Told what the store did to files on its own (a tightened mode, a one-off scrub): one log line each. */
export type StoreLog = (fields: Record<string, unknown>, message: string) => void;

export interface StoreFileOptions {
  /**
   * The directory of the keys job content is encrypted under (created 0700; never inside the database, never to be
   * backed up). Default: `content-keys` beside the SQLite file. Without one (`:memory:`, or PostgreSQL without it)
   * the keys live in this process only, and stored content cannot be read after it exits. Coordinator replicas that
   * share a PostgreSQL database read each other's content only if they share this directory.
   */
  keyDir?: string;
  log?: StoreLog;
}

export type NodeStatus = "online" | "offline";

/** What a node announces when it registers. `id` is its public key in lowercase hex. */
export interface NodeRegistration {
  id: string;
  version: string;
  hardware: Hardware;
  models: ServedModel[];
  maxConcurrency: number;
  /** The operator the node counts under: its delegation's operator key, or its own id. */
  operatorId: string;
  /** When the node's delegation ends (null without one). */
  delegationExpiresAt: Date | null;
}

/** The state a heartbeat carries. `models`, when present, replaces the served list. */
export interface NodeHeartbeatState {
  gpus: GpuStats[];
  loadedModels: string[];
  models?: ServedModel[];
  activeJobs: number;
  maxConcurrency: number;
  draining: boolean;
}

export interface NodeRecord {
  id: string;
  version: string;
  hardware: Hardware;
  models: ServedModel[];
  maxConcurrency: number;
  status: NodeStatus;
  registeredAt: Date;
  updatedAt: Date;
  statusChangedAt: Date;
  /** Last sign of life: a heartbeat or a session coming online. Silence is measured from here. */
  lastSeenAt: Date | null;
  lastHeartbeatAt: Date | null;
  gpus: GpuStats[];
  loadedModels: string[];
  activeJobs: number;
  draining: boolean;
  operatorId: string;
  delegationExpiresAt: Date | null;
  /** When a successor key took over (see `retireNodeKey`); the key is accepted until the grace after it ends. */
  retiredAt: Date | null;
  successorId: string | null;
}

/** `pending` waits for the owner's approval; `banned` nodes are refused and disconnected. */
export type OperatorStatus = "active" | "pending" | "banned";
/** How an operator got in: `existing` for nodes that predate admission, `cli` when the owner approved by hand. */
export type AdmissionRoute = "open" | "token" | "approval" | "existing" | "cli";

export interface NewOperator {
  id: string;
  status: OperatorStatus;
  admittedVia: AdmissionRoute;
  joinTokenId: string | null;
  createdAt: Date;
}

export interface OperatorRecord extends NewOperator {
  statusChangedAt: Date;
  statusReason: string | null;
}

export interface OperatorSummary extends OperatorRecord {
  /** Node keys registered under the operator (retired ones included). */
  nodes: number;
}

/** The owner asked to lift a node's quarantine; the coordinator carries it out on its next admission poll. */
export interface QuarantineRelease {
  nodeId: string;
  requestedAt: Date;
  reason: string | null;
}

export interface NewJoinToken {
  id: string;
  /** Lowercase hex SHA-256 of the token; the token itself is never stored. */
  tokenSha256: string;
  note: string | null;
  maxUses: number;
  createdAt: Date;
  expiresAt: Date;
}

export interface JoinTokenRecord extends NewJoinToken {
  uses: number;
  revokedAt: Date | null;
}

export interface NewJob {
  id: string;
  ownerId: string;
  model: string;
  messages: ChatMessage[];
  promptSha256: string;
  sampling: Sampling;
  createdAt: Date;
  /** Defaults to `pending`. */
  status?: JobStatus;
  nodeId?: string | null;
  contentExpiresAt?: Date | null;
  /** The coordinator replica that owns the job (see `Store.failOwnJobs`); `null` for none. */
  replicaId?: string | null;
}

/** Fields `updateJob` may change; `undefined` leaves a field as it is, `null` clears it. */
export interface JobPatch {
  status?: JobStatus;
  nodeId?: string | null;
  content?: string | null;
  outputSha256?: string | null;
  promptTokens?: number | null;
  completionTokens?: number | null;
  error?: ErrorCode | null;
  errorMessage?: string | null;
  startedAt?: Date | null;
  completedAt?: Date | null;
  latencyMs?: number | null;
  contentExpiresAt?: Date | null;
}

export interface JobRecord {
  id: string;
  ownerId: string;
  model: string;
  status: JobStatus;
  /** `null` once the job's content has expired (or its key is not held here: see `StoreFileOptions.keyDir`). */
  messages: ChatMessage[] | null;
  promptSha256: string;
  sampling: Sampling;
  nodeId: string | null;
  /** `null` until completed, and again once expired. */
  content: string | null;
  outputSha256: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  error: ErrorCode | null;
  errorMessage: string | null;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
  latencyMs: number | null;
  contentExpiresAt: Date | null;
  /** The coordinator replica that owns the job; `null` for rows written before replicas existed. */
  replicaId: string | null;
}

/** A job write's preconditions: the row changes only while every one given holds (a compare-and-set). */
export interface JobWriteCondition {
  /** The job is in one of these states. */
  ifStatus?: readonly JobStatus[];
  /** The job is owned by this replica. */
  ifReplica?: string;
  /**
   * When and with what content expiry the caller created the row: content is then sealed under that expiry's key
   * without reading the row first (one statement instead of two on a job's completion). The write still happens only
   * while the row's expiry is that one; a row whose expiry moved takes the careful path (read, reseal, write).
   */
  sealedAs?: { createdAt: Date; contentExpiresAt: Date | null };
}

/** A coordinator replica's lease on its id (replicas/replica-lease.ts). */
export interface ReplicaLease {
  id: string;
  /** Random per process: tells a restart of the same replica from a second process started with the same id. */
  instance: string;
  /** Where the replica listens (for operators and, later, for other replicas). */
  address: string;
  startedAt: Date;
  lastSeenAt: Date;
}

export interface JobListFilter {
  /** 1..1000; the API caps it lower. */
  limit: number;
  status?: JobStatus;
  /** Jobs created at or after this instant. */
  since?: Date;
}

export interface NewJobSegment {
  jobId: string;
  nodeId: string;
  completionTokens: number;
  startedAt: Date;
  endedAt: Date;
  /** The node's signed result commitment (hex digest and BIP-340 signature), when it sent a valid one. */
  resultCommitment?: string | null;
  resultSignature?: string | null;
}

export interface JobSegmentRecord extends NewJobSegment {
  /** 1, 2, … in the order the segments were added. */
  seq: number;
}

export interface NewApiKey {
  id: string;
  name: string;
  /** Lowercase hex SHA-256 of the bearer token; the token itself is never stored. */
  tokenSha256: string;
  rateLimitPerMinute: number;
  createdAt: Date;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  tokenSha256: string;
  rateLimitPerMinute: number;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface JobMetricsSample {
  tokensPerSecond: number;
  ttftMs: number;
}

export interface NodeModelMetrics {
  nodeId: string;
  model: string;
  /** EWMA (alpha 0.3) of real jobs' decode speed. */
  tokensPerSecond: number;
  /** EWMA (alpha 0.3) of real jobs' time to first token. */
  ttftMs: number;
  samples: number;
  updatedAt: Date;
}

export type NodeCommandType = "model_install" | "model_remove";
export type NodeCommandStatus = "queued" | "running" | "succeeded" | "failed";

export interface NewNodeCommand {
  id: string;
  nodeId: string;
  type: NodeCommandType;
  model: string;
  issuedAt: Date;
}

export interface NodeCommandUpdate {
  status: NodeCommandStatus;
  /** 0..1 where known. `undefined` keeps the last value. */
  progress?: number | null;
  error?: string | null;
  at: Date;
}

export interface NodeCommandRecord extends NewNodeCommand {
  status: NodeCommandStatus;
  progress: number | null;
  error: string | null;
  updatedAt: Date;
}

/** A node's standing as stored (trust/node-standing.ts); the store keeps it, the coordinator's memory is the live copy. */
export interface NodeStandingRecord {
  nodeId: string;
  operatorId: string;
  /** The completion window, oldest first: `1` completed, `0` failed / timed out / stalled / lost; at most 200. */
  outcomes: string;
  /** P(cheat) as log-odds (finite). */
  cheatLogOdds: number;
  checksPassed: number;
  checksFailed: number;
  cooldownUntil: Date | null;
  offenceStreak: number;
  lastOffenceAt: Date | null;
  quarantinedAt: Date | null;
  updatedAt: Date;
}

export interface OperatorStandingRecord {
  operatorId: string;
  completedJobs: number;
  updatedAt: Date;
}


/** One leg of a ledger transaction: a signed amount in micro-USDC (the legs of a transaction sum to zero). */
export interface LedgerEntry {
  account: string;
  amount: number;
}

export interface NewLedgerTransaction {
  id: string;
  /** Unique per event: posting the same key twice posts once. */
  idempotencyKey: string;
  kind: string;
  jobId?: string | null;
  memo?: string | null;
  createdAt: Date;
  entries: LedgerEntry[];
}

export interface LedgerTransactionRecord extends NewLedgerTransaction {
  jobId: string | null;
  memo: string | null;
}

export interface LedgerBalance {
  account: string;
  balance: number;
  updatedAt: Date;
}

/** What the property tests and `coordinator ledger check` assert: zero overall, no account below zero, every transaction balanced. */
export interface LedgerAudit {
  sum: number;
  transactions: number;
  unbalanced: string[];
  negative: LedgerBalance[];
  /** Accounts whose stored balance differs from the sum of their entries. */
  drifted: string[];
}

/** A receipt as stored: the signed body, its status, and where its money is. */
export interface ReceiptRecord extends Receipt {
  /** When held earnings become available (the dispute window's end). */
  holdUntil: Date;
  statusChangedAt: Date;
  payoutBatchId: string | null;
}

export interface NewReceipt {
  receipt: Receipt;
  holdUntil: Date;
}

export interface ReceiptFilter {
  operatorId?: string;
  nodeId?: string;
  jobId?: string;
  clientKeyId?: string;
  status?: ReceiptStatus;
  /** 1..1000 */
  limit: number;
}

/**
 * How a receipt's money moves when its status changes; the store posts these legs in the same database transaction
 * as the status change (payments/ledger-rules.ts computes them).
 */
export interface ReceiptTransition {
  receiptId: string;
  from: ReceiptStatus;
  to: ReceiptStatus;
  transaction: NewLedgerTransaction;
}

export interface PayoutAddressRecord {
  operatorId: string;
  chain: string;
  address: string;
  updatedAt: Date;
}

export type PayoutBatchStatus = "created" | "submitted" | "confirmed" | "failed";

export interface PayoutItem {
  operatorId: string;
  address: string;
  amount: number;
}

export interface PayoutBatchRecord {
  id: string;
  chain: string;
  status: PayoutBatchStatus;
  total: number;
  txHash: string | null;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
  items: PayoutItem[];
}

/**
 * The coordinator's persistent state. Every method is one short statement (or one transaction) and safe to call
 * from several coordinator replicas sharing a Postgres database.
 */
export interface Store {
  readonly dialect: "sqlite" | "postgres";

  // nodes
  /** Inserts or refreshes a node's announcement. A new node starts `offline`; an existing node keeps its status. */
  upsertNode(reg: NodeRegistration, at: Date): Promise<NodeRecord>;
  /** Records a heartbeat and marks the node online. `false` when the node is not registered. */
  recordHeartbeat(nodeId: string, state: NodeHeartbeatState, at: Date): Promise<boolean>;
  /**
   * `false` when the node is not registered, or (with `replicaId`) when going `offline` is refused because another
   * replica holds the node. Going online counts as a sign of life and records `replicaId` as the node's holder; going
   * offline clears it, and with `replicaId` happens only for a node that replica holds or nobody does.
   */
  setNodeStatus(nodeId: string, status: NodeStatus, at: Date, replicaId?: string): Promise<boolean>;
  /**
   * Records offline every online node held by a replica other than `self` whose lease was last renewed before
   * `liveSince` (or that holds none); returns their ids. Nodes nobody holds are left alone.
   */
  offlineNodesOfDeadReplicas(self: string, liveSince: Date, now: Date): Promise<string[]>;
  getNode(id: string): Promise<NodeRecord | undefined>;
  listNodes(filter?: { status?: NodeStatus }): Promise<NodeRecord[]>;
  /** Records that `successorId` took over from `nodeId` at `at`; `false` when `nodeId` is unknown or already retired. */
  retireNodeKey(nodeId: string, successorId: string, at: Date): Promise<boolean>;

  // operators and admission
  getOperator(id: string): Promise<OperatorRecord | undefined>;
  /** Inserts the operator unless it exists; returns the stored record either way (a concurrent insert wins). */
  ensureOperator(operator: NewOperator): Promise<OperatorRecord>;
  /** `false` when there is no such operator. */
  setOperatorStatus(id: string, status: OperatorStatus, at: Date, reason?: string | null): Promise<boolean>;
  /** Every operator with its node count, oldest first. */
  listOperators(): Promise<OperatorSummary[]>;
  /** Operators whose status changed at or after `since`. */
  listOperatorsChangedSince(since: Date): Promise<OperatorRecord[]>;
  /** Throws `TesseraError("conflict")` for a duplicate id or hash. */
  createJoinToken(token: NewJoinToken): Promise<JoinTokenRecord>;
  /** Takes one use of the token atomically; undefined when it is unknown, revoked, expired or used up. */
  useJoinToken(tokenSha256: string, at: Date): Promise<JoinTokenRecord | undefined>;
  /** All tokens, newest first. */
  listJoinTokens(): Promise<JoinTokenRecord[]>;
  /** Revokes by id (or a unique id prefix of at least 6 characters); `false` when there is no such active token. */
  revokeJoinToken(idOrPrefix: string, at: Date): Promise<boolean>;
  /** Records the owner's request to lift a node's quarantine (a later request replaces an earlier one). */
  requestQuarantineRelease(release: QuarantineRelease): Promise<void>;
  /** Every pending release request, removed as it is read. */
  takeQuarantineReleases(): Promise<QuarantineRelease[]>;

  // jobs
  /** Throws `TesseraError("conflict")` for a duplicate id. */
  insertJob(job: NewJob): Promise<void>;
  /**
   * Applies `patch`; with `ifStatus`, only while the job is in one of those states; with `ifReplica`, only while that
   * replica owns it. Returns whether a row changed.
   */
  updateJob(id: string, patch: JobPatch, options?: JobWriteCondition): Promise<boolean>;
  getJob(id: string): Promise<JobRecord | undefined>;
  /** One owner's jobs, newest first. */
  listJobs(ownerId: string, filter: JobListFilter): Promise<JobRecord[]>;
  /**
   * Drops messages and output of finished jobs whose `contentExpiresAt <= now`, keeping hashes and token counts,
   * then destroys the keys of every expiry bucket that has ended (except those unfinished jobs still use), so no
   * copy of that content anywhere can be read again. Returns how many jobs lost content.
   */
  expireJobContent(now: Date): Promise<number>;
  /**
   * Fails with `timeout` every pending/processing job of `replicaId` (or of no replica: rows from before replicas)
   * created before `cutoff`; returns their ids. Another replica's jobs are never touched.
   */
  failOwnJobs(replicaId: string, cutoff: Date, now: Date, message?: string): Promise<string[]>;
  /**
   * Fails with `timeout` every pending/processing job whose owner is not `self` and holds no lease seen at or after
   * `liveSince` (its lease lapsed or it shut down); returns their ids. Unowned rows (from before replicas) are left to
   * `failOwnJobs` at the next start.
   */
  failJobsOfDeadReplicas(self: string, liveSince: Date, now: Date, message: string): Promise<string[]>;

  // coordinator replicas
  /**
   * Takes the lease on `lease.id` when nobody holds it, this instance already does, or the holder was last seen
   * before `staleBefore`. Returns the holder when another live instance has it (nothing changes then).
   */
  claimReplicaLease(lease: ReplicaLease, staleBefore: Date): Promise<{ claimed: true } | { claimed: false; holder: ReplicaLease }>;
  /** Renews this instance's lease; `false` when it no longer holds it (another process took the id over). */
  renewReplicaLease(id: string, instance: string, at: Date): Promise<boolean>;
  /** Gives the lease up (a clean shutdown); `false` when this instance did not hold it. */
  releaseReplicaLease(id: string, instance: string): Promise<boolean>;
  /** Every replica lease, live or lapsed, by id. */
  listReplicaLeases(): Promise<ReplicaLease[]>;

  /**
   * The value stored under `key`, storing `proposed` first when there is none: replicas starting at once all get the
   * one value that won. Keys and values are short text (at most 200 characters).
   */
  settleSetting(key: string, proposed: string): Promise<string>;

  // signed node requests seen by any replica
  /**
   * Records a node key's nonce until `expiresAt`; `false` when it is already recorded (a replay, here or on another
   * replica). One statement: two replicas claiming the same nonce at once get one `true`.
   */
  claimNodeNonce(nodeKey: string, nonce: string, expiresAt: Date): Promise<boolean>;
  /**
   * `claimNodeNonce` for many in one statement, each answer in its place; a pair given twice in one call is claimed
   * by its first occurrence only.
   */
  claimNodeNonces(claims: ReadonlyArray<{ nodeKey: string; nonce: string; expiresAt: Date }>): Promise<boolean[]>;
  /** Deletes nonces whose `expiresAt <= now`; returns how many. */
  pruneNodeNonces(now: Date): Promise<number>;

  // job segments (failover)
  /** Throws `TesseraError("not_found")` when the job does not exist. */
  addJobSegment(segment: NewJobSegment): Promise<JobSegmentRecord>;
  listJobSegments(jobId: string): Promise<JobSegmentRecord[]>;

  // API keys
  /** Throws `TesseraError("conflict")` when an active key has the same name, or the id or hash exists. */
  createApiKey(key: NewApiKey): Promise<ApiKeyRecord>;
  /** Active (not revoked) key with this token hash. */
  findApiKeyByHash(tokenSha256: string): Promise<ApiKeyRecord | undefined>;
  /** All keys, revoked ones included, oldest first. */
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** Revokes the active key with this id or name; `false` when there is none. */
  revokeApiKey(idOrName: string, at: Date): Promise<boolean>;
  touchApiKey(id: string, at: Date): Promise<void>;

  // measured speed
  /** Folds a run of samples of one node and model, in the order measured, into its EWMAs (one write). */
  recordJobMetrics(nodeId: string, model: string, samples: readonly JobMetricsSample[], at: Date): Promise<NodeModelMetrics>;
  listNodeModelMetrics(filter?: { nodeId?: string }): Promise<NodeModelMetrics[]>;

  // node commands
  /** Throws `TesseraError("not_found")` for an unknown node, `conflict` for a duplicate id. */
  insertNodeCommand(command: NewNodeCommand): Promise<NodeCommandRecord>;
  /** `false` when there is no such command. */
  updateNodeCommand(id: string, update: NodeCommandUpdate): Promise<boolean>;
  getNodeCommand(id: string): Promise<NodeCommandRecord | undefined>;
  /** A node's commands, oldest first. */
  listNodeCommands(nodeId: string): Promise<NodeCommandRecord[]>;
  /** A node's queued commands, oldest first: what to hand the daemon next. */
  nextQueuedCommands(nodeId: string): Promise<NodeCommandRecord[]>;

  // node standing (reputation, cooldowns, quarantine)
  /** Inserts or replaces the node's standing. Throws `bad_request` for a malformed window or a non-finite figure. */
  saveNodeStanding(record: NodeStandingRecord): Promise<void>;
  listNodeStandings(): Promise<NodeStandingRecord[]>;
  /**
   * Adds `count` (a positive integer) completed jobs to the operator's count (atomic, so concurrent writers never lose
   * one); returns the new count. Throws `bad_request` for any other count.
   */
  addOperatorCompletedJobs(operatorId: string, count: number, at: Date): Promise<number>;
  listOperatorStandings(): Promise<OperatorStandingRecord[]>;

  // ledger (payments/design.md)
  /**
   * Posts a balanced transaction atomically and returns true; returns false, posting nothing, when its idempotency
   * key was posted before. Throws `insufficient_funds` (posting nothing) when an account other than `world` would
   * go below zero, and `bad_request` when the legs do not sum to zero or an amount is not a safe integer.
   */
  postTransaction(tx: NewLedgerTransaction): Promise<boolean>;
  /** `postTransaction` for several transactions in one database transaction (all or nothing); one result each, in order. */
  postTransactions(txs: readonly NewLedgerTransaction[]): Promise<boolean[]>;
  /** Balances of the given accounts (0 for an account never posted to). */
  getBalances(accounts: readonly string[]): Promise<Map<string, number>>;
  /** Every account whose name starts with `prefix`, by name. */
  listBalances(prefix: string): Promise<LedgerBalance[]>;
  /** The transactions that touched `account`, newest first, with all their legs. */
  listTransactions(account: string, filter: { since?: Date; limit: number }): Promise<LedgerTransactionRecord[]>;
  /** Jobs whose escrow was held and not yet closed (settled or refunded), with what each holds; oldest first. */
  openEscrows(filter: { jobId?: string; limit: number }): Promise<Array<{ jobId: string; amount: number; heldAt: Date; /** The client's escrow account it sits in. */ account: string }>>;
  /** The whole ledger checked: what must always hold. */
  auditLedger(): Promise<LedgerAudit>;

  // receipts
  /** Inserts the receipts and posts the job's transaction in one database transaction; false when it was posted before. */
  settleJob(tx: NewLedgerTransaction, receipts: readonly NewReceipt[]): Promise<boolean>;
  /** `settleJob` for several jobs in one database transaction (all or nothing); one result per job, in order. */
  settleJobs(jobs: ReadonlyArray<{ tx: NewLedgerTransaction; receipts: readonly NewReceipt[] }>): Promise<boolean[]>;
  getReceipt(id: string): Promise<ReceiptRecord | undefined>;
  /** The receipts of `ids` (at most 500) that exist, in no particular order. */
  getReceipts(ids: readonly string[]): Promise<ReceiptRecord[]>;
  /** Newest first. */
  listReceipts(filter: ReceiptFilter): Promise<ReceiptRecord[]>;
  /** Per node, the jobs it completed work for over its life (from its receipts, once per job); 0 for a node with none. */
  countJobsServed(nodeIds: readonly string[]): Promise<Map<string, number>>;
  /** What a client was charged, per receipt completed at or after `since`, oldest first (billing sums it by day). */
  listClientCharges(clientKeyId: string, since: Date): Promise<Array<{ completedAt: Date; amount: number }>>;
  /**
   * Stores each node signature on its receipt unless one is stored there, all in one statement (at most 500); returns
   * the ids it stored (not those that do not exist or were signed already). `bad_request`, nothing stored, for a
   * signature that is not 128 lowercase hex digits or an id given twice.
   */
  setReceiptNodeSignatures(signatures: ReadonlyArray<{ id: string; signature: string }>): Promise<string[]>;
  /** A node's receipts it has not signed yet, oldest first. */
  listUnsignedReceipts(nodeId: string, limit: number): Promise<ReceiptRecord[]>;
  /** Held receipts whose hold ended at or before `now`, oldest first. */
  listReleasableReceipts(now: Date, limit: number): Promise<ReceiptRecord[]>;
  /**
   * Moves a receipt from `from` to `to` and posts its transaction, atomically; false (nothing posted) when the receipt
   * is no longer in `from` (another replica or an earlier run moved it).
   */
  transitionReceipt(transition: ReceiptTransition, at: Date): Promise<boolean>;

  // payouts
  /** Sets (or replaces) the operator's address on `chain`. */
  setPayoutAddress(record: PayoutAddressRecord): Promise<void>;
  /** An operator's addresses, most recently set first (the first is where payouts go). */
  listPayoutAddresses(operatorId: string): Promise<PayoutAddressRecord[]>;
  /** Records that the operator asked to be paid at the next settlement run. */
  requestPayout(operatorId: string, at: Date): Promise<void>;
  /** Operators who asked to be paid, oldest request first. */
  listPayoutRequests(): Promise<Array<{ operatorId: string; requestedAt: Date }>>;
  /**
   * Makes a batch: for each operator, its available receipts not yet in a batch are tied to it, and their sum moves
   * from the operator's available account to the batch's in-flight account; items whose sum is below `minimum` are
   * left out. Clears the operators' payout requests. Returns the batch (undefined when no item is left).
   */
  createPayoutBatch(batch: { id: string; chain: string; operators: Array<{ operatorId: string; address: string }>; minimum: number; at: Date }): Promise<PayoutBatchRecord | undefined>;
  /** Records the transaction that settles the batch (status `submitted`). */
  markPayoutBatchSubmitted(id: string, txHash: string, at: Date): Promise<void>;
  /** The batch settled on chain: in-flight money becomes each operator's paid-out, its receipts `paid`. Idempotent. */
  confirmPayoutBatch(id: string, txHash: string, at: Date): Promise<boolean>;
  /** The batch will not settle: its money returns to the operators' available accounts, its receipts leave it. */
  failPayoutBatch(id: string, error: string, at: Date): Promise<boolean>;
  getPayoutBatch(id: string): Promise<PayoutBatchRecord | undefined>;
  /** Batches in the given states, oldest first. */
  listPayoutBatches(filter: { status?: readonly PayoutBatchStatus[]; operatorId?: string; limit: number }): Promise<PayoutBatchRecord[]>;

  close(): Promise<void>;
}
