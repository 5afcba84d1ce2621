import type { ChatMessage, ErrorCode, GpuStats, Hardware, JobStatus, Sampling, ServedModel } from "@tessera/protocol";

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
  /** `false` when the node is not registered. Going online counts as a sign of life. */
  setNodeStatus(nodeId: string, status: NodeStatus, at: Date): Promise<boolean>;
  getNode(id: string): Promise<NodeRecord | undefined>;
  listNodes(filter?: { status?: NodeStatus }): Promise<NodeRecord[]>;
  /** Turns offline every online node last seen before `cutoff`; returns their ids. */
  markSilentNodesOffline(cutoff: Date, at: Date): Promise<string[]>;

  // jobs
  /** Throws `TesseraError("conflict")` for a duplicate id. */
  insertJob(job: NewJob): Promise<void>;
  /**
   * Applies `patch`; with `ifStatus`, only while the job is in one of those states.
   * Returns whether a row changed.
   */
  updateJob(id: string, patch: JobPatch, options?: { ifStatus?: readonly JobStatus[] }): Promise<boolean>;
  getJob(id: string): Promise<JobRecord | undefined>;
  /** One owner's jobs, newest first. */
  listJobs(ownerId: string, filter: JobListFilter): Promise<JobRecord[]>;
  /**
   * Drops messages and output of finished jobs whose `contentExpiresAt <= now`, keeping hashes and token counts,
   * then destroys the keys of every expiry bucket that has ended (except those unfinished jobs still use), so no
   * copy of that content anywhere can be read again. Returns how many jobs lost content.
   */
  expireJobContent(now: Date): Promise<number>;
  /** Fails with `timeout` every pending/processing job created before `cutoff`; returns their ids. */
  failStaleJobs(cutoff: Date, now: Date, message?: string): Promise<string[]>;

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
  recordJobMetrics(nodeId: string, model: string, sample: JobMetricsSample, at: Date): Promise<NodeModelMetrics>;
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

  close(): Promise<void>;
}
