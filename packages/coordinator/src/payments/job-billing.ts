import { randomBytes, randomUUID } from "node:crypto";
import { type ChatMessage, RECEIPT_VERSION, type Receipt, type ReceiptBody, type Sampling, type Signer, TesseraError, signReceipt } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { promptTokenBound } from "../jobs/honest-usage.js";
import { REWARD_POOL } from "../store/ledger-accounts.js";
import type { NewLedgerTransaction, NewReceipt, Store } from "../store/types.js";
import { GroupCommit } from "./group-commit.js";
import { holdEscrow, refundEscrow, settleJob } from "./ledger-rules.js";
import { type Price, type PriceTable, costOf, rewardOf } from "./prices.js";

/** What billing needs to know of a node: its operator and the model file it serves (the registry answers). */
export interface NodeFacts {
  operatorOf(nodeId: string): Promise<string>;
  modelSha256(nodeId: string, model: string): string | null;
  modelSizeBytes(model: string): number | undefined;
}

export interface BillingDeps {
  store: Pick<Store, "postTransaction" | "postTransactions" | "settleJob" | "settleJobs" | "getBalances" | "openEscrows" | "getJob" | "listJobSegments">;
  prices: PriceTable;
  /** The platform's share of each amount, in basis points. */
  feeBps: number;
  holdMs: number;
  platform: Signer;
  nodes: NodeFacts;
  clock: Clock;
  logger: Logger;
  /** Told of each receipt once it is stored (the node is asked to sign it). */
  onIssued?(receipt: Receipt): void;
}

/** A finished job as billing sees it: what the client got and which nodes made it. */
export interface CompletedJob {
  id: string;
  ownerId: string;
  model: string;
  promptTokens: number;
  outputSha256: string;
  completedAt: number;
  segments: ReadonlyArray<{ nodeId: string; completionTokens: number; resultCommitment?: string | null }>;
}

/**
 * Embedding requests (`/v1/embeddings`) are billed under ids with this prefix: never stored as jobs, so an escrow of
 * one still open after a restart was never settled and is refunded (its owner read from the escrow account).
 */
export const EMBEDDING_ID_PREFIX = "emb-";

/**
 * A new embedding request's id: `emb-<replica>_<16 random base64url characters>`, at most 61 characters (ids travel
 * to nodes as a request id of at most 64). It names the replica holding the request, so another replica's start
 * leaves the escrow of a request still running there alone.
 */
export function embeddingRequestId(replicaId: string): string {
  return `${EMBEDDING_ID_PREFIX}${replicaId}_${randomBytes(12).toString("base64url")}`;
}

/** The replica an embedding request's id names; undefined for ids from before replicas (`emb-<uuid>`). */
export function embeddingReplicaOf(requestId: string): string | undefined {
  if (!requestId.startsWith(EMBEDDING_ID_PREFIX)) return undefined;
  const rest = requestId.slice(EMBEDDING_ID_PREFIX.length);
  const at = rest.indexOf("_");
  return at > 0 ? rest.slice(0, at) : undefined;
}

/** The client an escrow account (`client:<owner>:escrow`) belongs to, or undefined for another account. */
function ownerOfEscrowAccount(account: string): string | undefined {
  const m = /^client:(.+):escrow$/.exec(account);
  return m?.[1];
}

/** Who a receipt names as the paying client: the API key, or `open` for a request without one (no address in a receipt). */
export function clientKeyIdOf(ownerId: string): string {
  return ownerId.startsWith("key:") ? ownerId : "open";
}

/**
 * A job's money: on submit its greatest cost is held in escrow (or it is refused with `insufficient_funds`); on
 * completion the receipts are issued, signed by the platform, and the job settled from escrow in one database
 * transaction; on failure the escrow is refunded. Settlement and refund share one idempotency key per job, so a job
 * is closed once, whichever way and however often it is tried.
 */
export class JobBilling {
  /** The price each live job was held at, so a price change mid-job charges what was promised. */
  private readonly heldAt = new Map<string, { price: Price; promptBound: number; escrow: number }>();

  /** Escrow holds, and settlements, that arrive together are written in one database transaction each. */
  private readonly holds: GroupCommit<NewLedgerTransaction, boolean>;
  private readonly settlements: GroupCommit<{ tx: NewLedgerTransaction; receipts: NewReceipt[] }, boolean>;

  constructor(private readonly d: BillingDeps) {
    this.holds = new GroupCommit(
      (txs) => d.store.postTransactions(txs),
      (tx) => d.store.postTransaction(tx),
    );
    this.settlements = new GroupCommit(
      (jobs) => d.store.settleJobs(jobs),
      (job) => d.store.settleJob(job.tx, job.receipts),
    );
  }

  /** The greatest cost of a job: every prompt token the bound allows, and every completion token it may make. */
  maxCost(price: Price, promptBound: number, maxTokens: number): number {
    return costOf(promptBound, price.input_per_1k) + costOf(maxTokens, price.output_per_1k);
  }

  /** Holds the job's greatest cost. Throws `insufficient_funds` (nothing held) when the client's credit is short. */
  async open(job: { id: string; ownerId: string; model: string; messages: ChatMessage[]; sampling: Sampling }): Promise<void> {
    const price = this.d.prices.priceOf(job.model, this.d.nodes.modelSizeBytes(job.model));
    const promptBound = promptTokenBound(job.messages, "", job.sampling);
    const escrow = this.maxCost(price, promptBound, job.sampling.max_tokens);
    this.heldAt.set(job.id, { price, promptBound, escrow });
    if (escrow === 0) return;
    try {
      await this.holds.add(holdEscrow(job.id, job.ownerId, escrow, new Date(this.d.clock.now())));
    } catch (err) {
      this.heldAt.delete(job.id);
      if (err instanceof TesseraError && err.code === "insufficient_funds") {
        throw new TesseraError(
          "insufficient_funds",
          `this job may cost up to ${escrow / 1e6} USDC (${job.sampling.max_tokens} completion tokens at ${price.output_per_1k} micro-USDC per 1K, and the prompt), more than your credit; top up, or lower max_tokens`,
        );
      }
      throw err;
    }
  }

  /**
   * Holds an embedding request's greatest cost: every input token its bound allows, at the model's input price (no
   * output). Settled with `settle` (one segment, no completion tokens) or returned with `refund`, like a job's.
   */
  async openEmbedding(request: { id: string; ownerId: string; model: string; tokenBound: number }): Promise<void> {
    const price = this.d.prices.priceOf(request.model, this.d.nodes.modelSizeBytes(request.model));
    const escrow = costOf(request.tokenBound, price.input_per_1k);
    this.heldAt.set(request.id, { price, promptBound: request.tokenBound, escrow });
    if (escrow === 0) return;
    try {
      await this.holds.add(holdEscrow(request.id, request.ownerId, escrow, new Date(this.d.clock.now())));
    } catch (err) {
      this.heldAt.delete(request.id);
      if (err instanceof TesseraError && err.code === "insufficient_funds") {
        throw new TesseraError(
          "insufficient_funds",
          `these embeddings may cost up to ${escrow / 1e6} USDC (up to ${request.tokenBound} input tokens at ${price.input_per_1k} micro-USDC per 1K), more than your credit; top up, or send less input`,
        );
      }
      throw err;
    }
  }

  /** The job failed: everything held goes back to the client. */
  async refund(job: { id: string; ownerId: string }): Promise<void> {
    const held = this.heldAt.get(job.id);
    this.heldAt.delete(job.id);
    const escrow = held?.escrow ?? (await this.escrowOf(job.id));
    if (escrow === 0) return;
    await this.d.store.postTransaction(refundEscrow(job.id, job.ownerId, escrow, new Date(this.d.clock.now())));
  }

  /** The job completed: issue its receipts and settle it. Returns the receipts (none when it was settled before). */
  async settle(job: CompletedJob): Promise<Receipt[]> {
    const held = this.heldAt.get(job.id);
    this.heldAt.delete(job.id);
    const price = held?.price ?? this.d.prices.priceOf(job.model, this.d.nodes.modelSizeBytes(job.model));
    // What this process held at submit; after a restart (reconcile), what the ledger still holds.
    const escrow = held?.escrow ?? (await this.escrowOf(job.id));
    const at = new Date(this.d.clock.now());
    // Written with whatever else is settling now (group commit); the same job and receipts, the same outcome.
    const write = (receipts: Receipt[]) =>
      this.settlements.add({ tx: settleJob(job.id, job.ownerId, escrow, receipts, at), receipts: receipts.map((receipt) => ({ receipt, holdUntil: new Date(job.completedAt + this.d.holdMs) })) });
    let receipts = await this.receiptsFor(job, price, escrow, held?.promptBound, true);
    let settled: boolean;
    try {
      settled = await write(receipts);
    } catch (err) {
      if (!(err instanceof TesseraError && err.code === "insufficient_funds")) throw err;
      // The reward pool ran dry between reading it and settling (another job took it): no reward this time.
      this.d.logger.warn({ job: job.id }, "reward pool cannot cover this job's rewards; settled without them");
      receipts = await this.receiptsFor(job, price, escrow, held?.promptBound, false);
      settled = await write(receipts);
    }
    if (!settled) return [];
    for (const receipt of receipts) this.d.onIssued?.(receipt);
    return receipts;
  }

  /**
   * After a restart: a job whose escrow is still held was running when the last process stopped, or finished before
   * its settlement landed. A completed one is settled from its stored record and segments; a failed one is refunded;
   * a pending or processing one is left to the replica that owns it (or to the sweep that ends it). An embedding
   * request's is refunded unless `heldElsewhere` says another live replica holds it. Returns how many jobs it closed.
   */
  async reconcile(options: { heldElsewhere?: (embeddingRequestId: string) => boolean } = {}): Promise<number> {
    let closed = 0;
    for (const { jobId, amount: balance, account } of await this.d.store.openEscrows({ limit: 100_000 })) {
      if (jobId.startsWith(EMBEDDING_ID_PREFIX)) {
        // Still running on another live replica: its own end settles or refunds it.
        if (options.heldElsewhere?.(jobId)) continue;
        const ownerId = ownerOfEscrowAccount(account);
        if (ownerId === undefined) {
          this.d.logger.error({ request: jobId, escrow: balance }, "escrow of an embedding request held in no client's escrow account; left for the owner to look at");
          continue;
        }
        await this.refund({ id: jobId, ownerId });
        closed++;
        continue;
      }
      const job = await this.d.store.getJob(jobId);
      if (job?.status === "completed" && job.outputSha256 !== null && job.completedAt !== null) {
        const segments = await this.d.store.listJobSegments(jobId);
        await this.settle({ id: job.id, ownerId: job.ownerId, model: job.model, promptTokens: job.promptTokens ?? 0, outputSha256: job.outputSha256, completedAt: job.completedAt.getTime(), segments });
      } else if (job === undefined || job.status === "failed") {
        const ownerId = job?.ownerId;
        if (ownerId === undefined) {
          this.d.logger.error({ job: jobId, escrow: balance }, "escrow held for a job the store does not know; left for the owner to look at");
          continue;
        }
        await this.refund({ id: jobId, ownerId });
      } else continue;
      closed++;
    }
    return closed;
  }

  private async escrowOf(jobId: string): Promise<number> {
    return (await this.d.store.openEscrows({ jobId, limit: 1 }))[0]?.amount ?? 0;
  }

  /**
   * One receipt per segment. The first carries the prompt; every segment its own completion tokens. The client is
   * charged for the whole job once (rounded up) and never more than its escrow; the charge is split over the segments
   * by their tokens, the last taking the remainder, so the receipts' amounts add up to exactly the charge.
   */
  private async receiptsFor(job: CompletedJob, price: Price, escrow: number, promptBound: number | undefined, withRewards: boolean): Promise<Receipt[]> {
    const segments = job.segments.length > 0 ? job.segments : [];
    const inputTokens = promptBound === undefined ? job.promptTokens : Math.min(job.promptTokens, promptBound);
    const outputTokens = segments.reduce((sum, s) => sum + s.completionTokens, 0);
    const charge = Math.min(escrow, costOf(inputTokens, price.input_per_1k) + costOf(outputTokens, price.output_per_1k));
    const completedAt = new Date(job.completedAt).toISOString();
    const receipts: Receipt[] = [];
    let left = charge;
    for (const [i, segment] of segments.entries()) {
      const input = i === 0 ? inputTokens : 0;
      const last = i === segments.length - 1;
      const weight = charge === 0 ? 0 : costOf(input, price.input_per_1k) + costOf(segment.completionTokens, price.output_per_1k);
      const amount = last ? left : Math.min(left, weight);
      left -= amount;
      const reward = !withRewards ? 0 : rewardOf(input, price.reward_input_per_1k) + rewardOf(segment.completionTokens, price.reward_output_per_1k);
      const body: ReceiptBody = {
        v: RECEIPT_VERSION,
        receipt_id: randomUUID(),
        job_id: job.id,
        segment: i + 1,
        node_id: segment.nodeId,
        operator_id: await this.d.nodes.operatorOf(segment.nodeId),
        client_key_id: clientKeyIdOf(job.ownerId),
        model: job.model,
        model_sha256: this.d.nodes.modelSha256(segment.nodeId, job.model),
        input_tokens: input,
        output_tokens: segment.completionTokens,
        price: { input_per_1k: price.input_per_1k, output_per_1k: price.output_per_1k },
        amount,
        fee: Math.floor((amount * this.d.feeBps) / 10_000),
        reward,
        output_sha256: job.outputSha256,
        result_commitment: segment.resultCommitment ?? null,
        completed_at: completedAt,
        platform_key: this.d.platform.publicKeyHex,
      };
      receipts.push({ ...body, status: "held", platform_signature: signReceipt(this.d.platform, body, "platform"), node_signature: null });
    }
    const rewards = receipts.reduce((sum, r) => sum + r.reward, 0);
    if (rewards > 0) {
      // Rewards are paid while the pool lasts: none of this job's when the pool cannot cover them all.
      const pool = (await this.d.store.getBalances([REWARD_POOL])).get(REWARD_POOL) ?? 0;
      if (rewards > pool) {
        this.d.logger.warn({ job: job.id, rewards, pool }, "the reward pool cannot cover this job's rewards; none paid");
        return this.receiptsFor(job, price, escrow, promptBound, false);
      }
    }
    return receipts;
  }
}
