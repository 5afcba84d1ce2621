import type { Kysely } from "kysely";
import type { ContentKeyRing } from "./content-keys.js";
import * as apiKeys from "./api-key-queries.js";
import * as commands from "./command-queries.js";
import * as jobs from "./job-queries.js";
import * as ledger from "./ledger-queries.js";
import * as payouts from "./payout-queries.js";
import * as receipts from "./receipt-queries.js";
import * as metrics from "./metric-queries.js";
import * as nodes from "./node-queries.js";
import * as operators from "./operator-queries.js";
import * as joinTokens from "./join-token-queries.js";
import * as releases from "./release-queries.js";
import * as replicas from "./replica-queries.js";
import type { Database } from "./schema.js";
import * as segments from "./segment-queries.js";
import * as served from "./served-queries.js";
import * as standing from "./standing-queries.js";
import type {
  ApiKeyRecord,
  JobListFilter,
  JobMetricsSample,
  JobPatch,
  JobRecord,
  JobWriteCondition,
  ReplicaLease,
  JobSegmentRecord,
  NewApiKey,
  NewJob,
  NewJobSegment,
  NewNodeCommand,
  NodeCommandRecord,
  NodeCommandUpdate,
  NodeHeartbeatState,
  NodeModelMetrics,
  NodeRecord,
  NodeRegistration,
  NodeStatus,
  NodeStandingRecord,
  OperatorStandingRecord,
  Store,
  NewOperator,
  OperatorRecord,
  OperatorStatus,
  OperatorSummary,
  NewJoinToken,
  JoinTokenRecord,
  QuarantineRelease,
  LedgerAudit,
  LedgerBalance,
  LedgerTransactionRecord,
  NewLedgerTransaction,
  NewReceipt,
  PayoutAddressRecord,
  PayoutBatchRecord,
  PayoutBatchStatus,
  ReceiptFilter,
  ReceiptRecord,
  ReceiptTransition,
} from "./types.js";

/** The `Store` over one Kysely instance; the SQL lives in the `*-queries.ts` files, one per table. */
export class KyselyStore implements Store {
  private closed: Promise<void> | undefined;

  /**
   * @param keys where job content keys live (outside the database)
   * @param afterExpiry runs after each expiry sweep (SQLite: checkpoint the WAL so the overwritten pages leave it)
   */
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: "sqlite" | "postgres",
    private readonly keys: ContentKeyRing,
    private readonly afterExpiry?: () => Promise<void>,
  ) {}

  upsertNode(reg: NodeRegistration, at: Date): Promise<NodeRecord> {
    return nodes.upsertNode(this.db, reg, at);
  }
  recordHeartbeat(nodeId: string, state: NodeHeartbeatState, at: Date): Promise<boolean> {
    return nodes.recordHeartbeat(this.db, nodeId, state, at);
  }
  setNodeStatus(nodeId: string, status: NodeStatus, at: Date, replicaId?: string): Promise<boolean> {
    return nodes.setNodeStatus(this.db, nodeId, status, at, replicaId);
  }
  offlineNodesOfDeadReplicas(self: string, liveSince: Date, now: Date): Promise<string[]> {
    return nodes.offlineNodesOfDeadReplicas(this.db, self, liveSince, now);
  }
  getNode(id: string): Promise<NodeRecord | undefined> {
    return nodes.getNode(this.db, id);
  }
  listNodes(filter?: { status?: NodeStatus }): Promise<NodeRecord[]> {
    return nodes.listNodes(this.db, filter);
  }
  retireNodeKey(nodeId: string, successorId: string, at: Date): Promise<boolean> {
    return nodes.retireNodeKey(this.db, nodeId, successorId, at);
  }

  getOperator(id: string): Promise<OperatorRecord | undefined> {
    return operators.getOperator(this.db, id);
  }
  ensureOperator(operator: NewOperator): Promise<OperatorRecord> {
    return operators.ensureOperator(this.db, operator);
  }
  setOperatorStatus(id: string, status: OperatorStatus, at: Date, reason?: string | null): Promise<boolean> {
    return operators.setOperatorStatus(this.db, id, status, at, reason);
  }
  listOperators(): Promise<OperatorSummary[]> {
    return operators.listOperators(this.db);
  }
  listOperatorsChangedSince(since: Date): Promise<OperatorRecord[]> {
    return operators.listOperatorsChangedSince(this.db, since);
  }
  createJoinToken(token: NewJoinToken): Promise<JoinTokenRecord> {
    return joinTokens.createJoinToken(this.db, token);
  }
  useJoinToken(tokenSha256: string, at: Date): Promise<JoinTokenRecord | undefined> {
    return joinTokens.useJoinToken(this.db, tokenSha256, at);
  }
  listJoinTokens(): Promise<JoinTokenRecord[]> {
    return joinTokens.listJoinTokens(this.db);
  }
  revokeJoinToken(idOrPrefix: string, at: Date): Promise<boolean> {
    return joinTokens.revokeJoinToken(this.db, idOrPrefix, at);
  }
  requestQuarantineRelease(release: QuarantineRelease): Promise<void> {
    return releases.requestQuarantineRelease(this.db, release);
  }
  takeQuarantineReleases(): Promise<QuarantineRelease[]> {
    return releases.takeQuarantineReleases(this.db);
  }

  insertJob(job: NewJob): Promise<void> {
    return jobs.insertJob(this.db, this.keys, job);
  }
  updateJob(id: string, patch: JobPatch, options?: JobWriteCondition): Promise<boolean> {
    return jobs.updateJob(this.db, this.keys, id, patch, options);
  }
  getJob(id: string): Promise<JobRecord | undefined> {
    return jobs.getJob(this.db, this.keys, id);
  }
  listJobs(ownerId: string, filter: JobListFilter): Promise<JobRecord[]> {
    return jobs.listJobs(this.db, this.keys, ownerId, filter);
  }
  async expireJobContent(now: Date): Promise<number> {
    const expired = await jobs.expireJobContent(this.db, this.keys, now);
    await this.afterExpiry?.();
    return expired;
  }
  failOwnJobs(replicaId: string, cutoff: Date, now: Date, message?: string): Promise<string[]> {
    return jobs.failOwnJobs(this.db, replicaId, cutoff, now, message);
  }
  failJobsOfDeadReplicas(self: string, liveSince: Date, now: Date, message: string): Promise<string[]> {
    return jobs.failJobsOfDeadReplicas(this.db, self, liveSince, now, message);
  }

  claimReplicaLease(lease: ReplicaLease, staleBefore: Date): Promise<{ claimed: true } | { claimed: false; holder: ReplicaLease }> {
    return replicas.claimReplicaLease(this.db, lease, staleBefore);
  }
  renewReplicaLease(id: string, instance: string, at: Date): Promise<boolean> {
    return replicas.renewReplicaLease(this.db, id, instance, at);
  }
  settleSetting(key: string, proposed: string): Promise<string> {
    return replicas.settleSetting(this.db, key, proposed);
  }
  releaseReplicaLease(id: string, instance: string): Promise<boolean> {
    return replicas.releaseReplicaLease(this.db, id, instance);
  }
  listReplicaLeases(): Promise<ReplicaLease[]> {
    return replicas.listReplicaLeases(this.db);
  }
  claimNodeNonce(nodeKey: string, nonce: string, expiresAt: Date): Promise<boolean> {
    return replicas.claimNodeNonce(this.db, nodeKey, nonce, expiresAt);
  }
  claimNodeNonces(claims: ReadonlyArray<{ nodeKey: string; nonce: string; expiresAt: Date }>): Promise<boolean[]> {
    return replicas.claimNodeNonces(this.db, claims);
  }
  pruneNodeNonces(now: Date): Promise<number> {
    return replicas.pruneNodeNonces(this.db, now);
  }

  addJobSegment(segment: NewJobSegment): Promise<JobSegmentRecord> {
    return segments.addJobSegment(this.db, segment);
  }
  listJobSegments(jobId: string): Promise<JobSegmentRecord[]> {
    return segments.listJobSegments(this.db, jobId);
  }

  createApiKey(key: NewApiKey): Promise<ApiKeyRecord> {
    return apiKeys.createApiKey(this.db, key);
  }
  findApiKeyByHash(tokenSha256: string): Promise<ApiKeyRecord | undefined> {
    return apiKeys.findApiKeyByHash(this.db, tokenSha256);
  }
  listApiKeys(): Promise<ApiKeyRecord[]> {
    return apiKeys.listApiKeys(this.db);
  }
  revokeApiKey(idOrName: string, at: Date): Promise<boolean> {
    return apiKeys.revokeApiKey(this.db, idOrName, at);
  }
  touchApiKey(id: string, at: Date): Promise<void> {
    return apiKeys.touchApiKey(this.db, id, at);
  }

  recordJobMetrics(nodeId: string, model: string, samples: readonly JobMetricsSample[], at: Date): Promise<NodeModelMetrics> {
    return metrics.recordJobMetrics(this.db, nodeId, model, samples, at);
  }
  listNodeModelMetrics(filter?: { nodeId?: string }): Promise<NodeModelMetrics[]> {
    return metrics.listNodeModelMetrics(this.db, filter);
  }

  insertNodeCommand(command: NewNodeCommand): Promise<NodeCommandRecord> {
    return commands.insertNodeCommand(this.db, command);
  }
  updateNodeCommand(id: string, update: NodeCommandUpdate): Promise<boolean> {
    return commands.updateNodeCommand(this.db, id, update);
  }
  getNodeCommand(id: string): Promise<NodeCommandRecord | undefined> {
    return commands.getNodeCommand(this.db, id);
  }
  listNodeCommands(nodeId: string): Promise<NodeCommandRecord[]> {
    return commands.listNodeCommands(this.db, nodeId);
  }
  nextQueuedCommands(nodeId: string): Promise<NodeCommandRecord[]> {
    return commands.listNodeCommands(this.db, nodeId, "queued");
  }

  saveNodeStanding(record: NodeStandingRecord): Promise<void> {
    return standing.saveNodeStanding(this.db, record);
  }
  listNodeStandings(): Promise<NodeStandingRecord[]> {
    return standing.listNodeStandings(this.db);
  }
  addOperatorCompletedJobs(operatorId: string, count: number, at: Date): Promise<number> {
    return standing.addOperatorCompletedJobs(this.db, operatorId, count, at);
  }
  listOperatorStandings(): Promise<OperatorStandingRecord[]> {
    return standing.listOperatorStandings(this.db);
  }

  postTransaction(tx: NewLedgerTransaction): Promise<boolean> {
    return ledger.postTransaction(this.db, tx);
  }
  postTransactions(txs: readonly NewLedgerTransaction[]): Promise<boolean[]> {
    return ledger.postTransactions(this.db, txs);
  }
  getBalances(accounts: readonly string[]): Promise<Map<string, number>> {
    return ledger.getBalances(this.db, accounts);
  }
  listBalances(prefix: string): Promise<LedgerBalance[]> {
    return ledger.listBalances(this.db, prefix);
  }
  listTransactions(account: string, filter: { since?: Date; limit: number }): Promise<LedgerTransactionRecord[]> {
    return ledger.listTransactions(this.db, account, filter);
  }
  openEscrows(filter: { jobId?: string; limit: number }): Promise<Array<{ jobId: string; amount: number; heldAt: Date; account: string }>> {
    return ledger.openEscrows(this.db, filter);
  }
  auditLedger(): Promise<LedgerAudit> {
    return ledger.auditLedger(this.db);
  }

  settleJob(tx: NewLedgerTransaction, list: readonly NewReceipt[]): Promise<boolean> {
    return receipts.settleJob(this.db, tx, list);
  }
  settleJobs(jobs: ReadonlyArray<{ tx: NewLedgerTransaction; receipts: readonly NewReceipt[] }>): Promise<boolean[]> {
    return receipts.settleJobs(this.db, jobs);
  }
  getReceipt(id: string): Promise<ReceiptRecord | undefined> {
    return receipts.getReceipt(this.db, id);
  }
  listReceipts(filter: ReceiptFilter): Promise<ReceiptRecord[]> {
    return receipts.listReceipts(this.db, filter);
  }
  countJobsServed(nodeIds: readonly string[]): Promise<Map<string, number>> {
    return served.countJobsServed(this.db, nodeIds);
  }
  listClientCharges(clientKeyId: string, since: Date): Promise<Array<{ completedAt: Date; amount: number }>> {
    return receipts.listClientCharges(this.db, clientKeyId, since);
  }
  getReceipts(ids: readonly string[]): Promise<ReceiptRecord[]> {
    return receipts.getReceipts(this.db, ids);
  }

  setReceiptNodeSignatures(signatures: ReadonlyArray<{ id: string; signature: string }>): Promise<string[]> {
    return receipts.setReceiptNodeSignatures(this.db, signatures);
  }
  listUnsignedReceipts(nodeId: string, limit: number): Promise<ReceiptRecord[]> {
    return receipts.listUnsignedReceipts(this.db, nodeId, limit);
  }
  listReleasableReceipts(now: Date, limit: number): Promise<ReceiptRecord[]> {
    return receipts.listReleasableReceipts(this.db, now, limit);
  }
  transitionReceipt(transition: ReceiptTransition, at: Date): Promise<boolean> {
    return receipts.transitionReceipt(this.db, transition, at);
  }

  setPayoutAddress(record: PayoutAddressRecord): Promise<void> {
    return payouts.setPayoutAddress(this.db, record);
  }
  listPayoutAddresses(operatorId: string): Promise<PayoutAddressRecord[]> {
    return payouts.listPayoutAddresses(this.db, operatorId);
  }
  requestPayout(operatorId: string, at: Date): Promise<void> {
    return payouts.requestPayout(this.db, operatorId, at);
  }
  listPayoutRequests(): Promise<Array<{ operatorId: string; requestedAt: Date }>> {
    return payouts.listPayoutRequests(this.db);
  }
  createPayoutBatch(batch: { id: string; chain: string; operators: Array<{ operatorId: string; address: string }>; minimum: number; at: Date }): Promise<PayoutBatchRecord | undefined> {
    return payouts.createPayoutBatch(this.db, batch);
  }
  markPayoutBatchSubmitted(id: string, txHash: string, at: Date): Promise<void> {
    return payouts.markPayoutBatchSubmitted(this.db, id, txHash, at);
  }
  confirmPayoutBatch(id: string, txHash: string, at: Date): Promise<boolean> {
    return payouts.confirmPayoutBatch(this.db, id, txHash, at);
  }
  failPayoutBatch(id: string, error: string, at: Date): Promise<boolean> {
    return payouts.failPayoutBatch(this.db, id, error, at);
  }
  getPayoutBatch(id: string): Promise<PayoutBatchRecord | undefined> {
    return payouts.getPayoutBatch(this.db, id);
  }
  listPayoutBatches(filter: { status?: readonly PayoutBatchStatus[]; operatorId?: string; limit: number }): Promise<PayoutBatchRecord[]> {
    return payouts.listPayoutBatches(this.db, filter);
  }

  /** Idempotent: closes the SQLite file or drains the Postgres pool once. */
  close(): Promise<void> {
    this.closed ??= this.db.destroy();
    return this.closed;
  }
}
