import { randomUUID } from "node:crypto";
import { TesseraError } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import { crashPoint } from "../crash-point.js";
import { PAYOUT_CHAINS, type PayoutChainName } from "../settlement/chains.js";
import type { PayoutBatchRecord, Store } from "../store/types.js";
import { isPayoutDue, type PayoutSchedule } from "./payout-schedule.js";

/**
 * The settlement worker (payments/design.md): per payout chain, it pays operators their available earnings in batches
 * through the chain's payout vault, and never pays a batch twice.
 *
 * The rule that keeps it from paying twice, whatever crashes where: a batch is recorded (`created`, its money moved to
 * in-flight) BEFORE its transaction is sent, and a `created` batch is only ever sent again after the chain says it is
 * not settled. The vault itself refuses a batch id it has settled, so even two transactions for one batch pay once; the
 * worker then records whichever transaction did settle it. A batch is failed (its money returned to available) only
 * when its transaction reverted AND the chain says the batch is not settled.
 */

/** One chain's payout vault, as the worker sees it (settlement-worker-vault.ts adapts the viem VaultClient). */
export interface SettlementChain {
  /** The most recipients one `settle` takes. */
  readonly maxRecipients: number;
  /** Sends the settling transaction and returns its hash without waiting for it to be mined. */
  settle(batchId: string, recipients: readonly string[], amounts: readonly number[]): Promise<string>;
  /** Waits until `hash` is mined under `confirmations` blocks; a revert is a status, not a throw. */
  waitForReceipt(hash: string, confirmations: number): Promise<{ status: "success" | "reverted" }>;
  isSettled(batchId: string): Promise<boolean>;
  /** The transaction that settled `batchId`, undefined when it is not settled. */
  findSettlementTx(batchId: string): Promise<string | undefined>;
}

export interface SettlementWorkerChain {
  name: PayoutChainName;
  chain: SettlementChain;
}

export type SettlementStore = Pick<
  Store,
  | "listBalances"
  | "listPayoutAddresses"
  | "listPayoutRequests"
  | "createPayoutBatch"
  | "markPayoutBatchSubmitted"
  | "confirmPayoutBatch"
  | "failPayoutBatch"
  | "listPayoutBatches"
>;

export interface WorkerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SettlementWorkerOptions {
  store: SettlementStore;
  /** The chains to settle on: those with an RPC URL, a vault and the payer key configured. */
  chains: readonly SettlementWorkerChain[];
  /** When auto-payouts run (config `payoutSchedule`); explicit requests are paid at every run whatever it says. */
  schedule: PayoutSchedule;
  /** Auto-payout threshold in micro-USDC (config `payoutThreshold`); 0 or less than a chain's minimum: the minimum. */
  threshold: number;
  /** Blocks a settlement must be buried under (config `confirmations`). */
  confirmations: number;
  clock: Clock;
  logger: WorkerLogger;
  /** How often `start()` runs a pass (default 60 s). */
  intervalMs?: number;
  /** Batch ids (default random UUIDs). */
  newBatchId?: () => string;
  /**
   * A submitted batch still unsettled this long after its transaction was recorded is sent again (default 30 min):
   * its transaction was most likely dropped from the mempool. Safe, because the vault pays a batch id once and the
   * worker records whichever transaction settled it.
   */
  resendAfterMs?: number;
}

/** What one pass did on one chain. */
export interface ChainRunReport {
  chain: PayoutChainName;
  confirmed: string[];
  failed: string[];
  /** Batches left unfinished (an RPC error, a transaction not yet mined): the next pass resumes them. */
  pending: string[];
  error?: string;
}

const OPERATOR_PREFIX = "operator:";
const AVAILABLE_SUFFIX = ":available";
const MAX_OPEN_BATCHES = 1000;
export const DEFAULT_RESEND_AFTER_MS = 30 * 60_000;

export class SettlementWorker {
  private readonly store: SettlementStore;
  private readonly lastAutoRun = new Map<PayoutChainName, number>();
  private readonly newBatchId: () => string;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ChainRunReport[]> | undefined;

  constructor(private readonly options: SettlementWorkerOptions) {
    if (!Number.isInteger(options.confirmations) || options.confirmations < 1) throw new TesseraError("bad_request", `confirmations must be a whole number ≥ 1, got ${options.confirmations}`);
    if (!Number.isSafeInteger(options.threshold) || options.threshold < 0) throw new TesseraError("bad_request", `the payout threshold must be whole micro-USDC ≥ 0, got ${options.threshold}`);
    const names = options.chains.map((c) => c.name);
    if (new Set(names).size !== names.length) throw new TesseraError("bad_request", `a chain is named twice: ${names.join(", ")}`);
    this.store = options.store;
    this.newBatchId = options.newBatchId ?? randomUUID;
  }

  /** The smallest payout on `chain`, in micro-USDC (settlement/chains.ts). */
  static minimumOf(chain: PayoutChainName): number {
    return Number(PAYOUT_CHAINS[chain].minPayoutMicroUsdc);
  }

  /** Runs a pass now and then every `intervalMs`; passes never overlap. */
  start(): void {
    if (this.timer) return;
    const tick = () => {
      void this.runOnce().catch((err: unknown) => this.options.logger.error({ err }, "settlement pass failed"));
    };
    this.timer = setInterval(tick, this.options.intervalMs ?? 60_000);
    this.timer.unref();
    tick();
  }

  /** Stops the timer and waits for a pass in progress to end (a batch it sent stays recorded and resumes next start). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One pass over every chain: unfinished batches first, then new ones. A pass already running is joined, not doubled. */
  runOnce(): Promise<ChainRunReport[]> {
    this.running ??= (async () => {
      try {
        const reports: ChainRunReport[] = [];
        // Chains one after another: a chain whose RPC is down reports its error and the others still pay.
        for (const c of this.options.chains) reports.push(await this.runChain(c));
        return reports;
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private now(): Date {
    return new Date(this.options.clock.now());
  }

  private async runChain({ name, chain }: SettlementWorkerChain): Promise<ChainRunReport> {
    const report: ChainRunReport = { chain: name, confirmed: [], failed: [], pending: [] };
    try {
      const open = await this.store.listPayoutBatches({ status: ["created", "submitted"], limit: MAX_OPEN_BATCHES });
      for (const batch of open.filter((b) => b.chain === name)) await this.resume(chain, batch, report);
      if (report.pending.length > 0) return report; // new money waits until the chain has taken what is in flight

      const nowMs = this.options.clock.now();
      const auto = isPayoutDue(this.options.schedule, this.lastAutoRun.get(name), nowMs);
      const operators = await this.dueOperators(name, auto);
      let paidAny = false;
      for (let i = 0; i < operators.length; i += chain.maxRecipients) {
        const batch = await this.store.createPayoutBatch({
          id: this.newBatchId(),
          chain: name,
          operators: operators.slice(i, i + chain.maxRecipients),
          minimum: SettlementWorker.minimumOf(name),
          at: this.now(),
        });
        if (batch) {
          paidAny = true;
          await this.submit(chain, batch, report);
        }
      }
      // A period counts as paid once someone was paid in it: a pass that found nobody due (earnings still held) does
      // not use up the period, so earnings released later in it are paid at the next pass.
      if (auto && paidAny) this.lastAutoRun.set(name, nowMs);
    } catch (err) {
      report.error = err instanceof Error ? err.message : String(err);
      this.options.logger.warn({ chain: name, err }, "settlement pass stopped early; it resumes on the next pass");
    }
    return report;
  }

  /**
   * Operators to pay on `chain` now: those who asked (their request is cleared by the batch, whatever their balance)
   * and, when an auto-payout is due, those whose available earnings reach the threshold. Each is paid to its most
   * recently set address, and only when that address is on this chain.
   */
  private async dueOperators(name: PayoutChainName, auto: boolean): Promise<Array<{ operatorId: string; address: string }>> {
    const ids = new Set((await this.store.listPayoutRequests()).map((r) => r.operatorId));
    if (auto) {
      const threshold = Math.max(this.options.threshold, SettlementWorker.minimumOf(name));
      for (const b of await this.store.listBalances(OPERATOR_PREFIX)) {
        if (!b.account.endsWith(AVAILABLE_SUFFIX) || b.balance < threshold) continue;
        ids.add(b.account.slice(OPERATOR_PREFIX.length, -AVAILABLE_SUFFIX.length));
      }
    }
    const due: Array<{ operatorId: string; address: string }> = [];
    for (const operatorId of ids) {
      const [first] = await this.store.listPayoutAddresses(operatorId);
      if (first?.chain === name) due.push({ operatorId, address: first.address });
    }
    return due;
  }

  /** A batch left unfinished by an earlier pass or an earlier process. */
  private async resume(chain: SettlementChain, batch: PayoutBatchRecord, report: ChainRunReport): Promise<void> {
    if (await chain.isSettled(batch.id)) {
      // Paid already: by our recorded transaction, or by one sent just before a crash that was never recorded.
      const tx = (await chain.findSettlementTx(batch.id)) ?? batch.txHash;
      if (tx === undefined || tx === null) throw new TesseraError("internal_error", `batch ${batch.id} is settled on chain, but its transaction was not found`);
      this.options.logger.info({ batch: batch.id, tx, was: batch.status }, "payout batch found settled on chain; recording it");
      if (batch.status === "created") await this.store.markPayoutBatchSubmitted(batch.id, tx, this.now());
      await this.finish(chain, batch, tx, report);
      return;
    }
    const stale = this.options.clock.now() - batch.updatedAt.getTime() >= (this.options.resendAfterMs ?? DEFAULT_RESEND_AFTER_MS);
    if (batch.status === "created" || batch.txHash === null || stale) {
      if (batch.txHash !== null) this.options.logger.warn({ batch: batch.id, tx: batch.txHash }, "payout batch still unsettled long after it was sent; sending it again");
      await this.submit(chain, batch, report);
      return;
    }
    await this.finish(chain, batch, batch.txHash, report);
  }

  private async submit(chain: SettlementChain, batch: PayoutBatchRecord, report: ChainRunReport): Promise<void> {
    let hash: string;
    try {
      hash = await chain.settle(batch.id, batch.items.map((i) => i.address), batch.items.map((i) => i.amount));
    } catch (err) {
      // The node simulates before sending: a batch settled in the meantime (another replica, a transaction sent before
      // a crash and mined since) is refused as `conflict` and recorded as settled, never sent again.
      if (err instanceof TesseraError && err.code === "conflict" && (await chain.isSettled(batch.id))) {
        const tx = await chain.findSettlementTx(batch.id);
        if (tx !== undefined) {
          await this.store.markPayoutBatchSubmitted(batch.id, tx, this.now());
          await this.finish(chain, batch, tx, report);
          return;
        }
      }
      // Left `created`: the next pass checks the chain and tries again (an RPC down, a vault holding too little).
      report.pending.push(batch.id);
      this.options.logger.warn({ batch: batch.id, err }, "payout batch not sent; it is retried on the next pass");
      throw err;
    }
    // Test hook: a process killed here has sent the transaction and not recorded it; the restart must not pay twice.
    crashPoint("settlement.sent");
    await this.store.markPayoutBatchSubmitted(batch.id, hash, this.now());
    this.options.logger.info({ batch: batch.id, tx: hash, total: batch.total, recipients: batch.items.length }, "payout batch sent");
    await this.finish(chain, batch, hash, report);
  }

  /** Waits for `hash` and records the outcome. */
  private async finish(chain: SettlementChain, batch: PayoutBatchRecord, hash: string, report: ChainRunReport): Promise<void> {
    let receipt: { status: "success" | "reverted" };
    try {
      receipt = await chain.waitForReceipt(hash, this.options.confirmations);
    } catch (err) {
      report.pending.push(batch.id);
      throw err;
    }
    if (receipt.status === "success") {
      await this.store.confirmPayoutBatch(batch.id, hash, this.now());
      report.confirmed.push(batch.id);
      this.options.logger.info({ batch: batch.id, tx: hash, total: batch.total }, "payout batch confirmed");
      return;
    }
    // Reverted. If the batch is settled anyway, another of its transactions paid it: record that one.
    if (await chain.isSettled(batch.id)) {
      const paidBy = await chain.findSettlementTx(batch.id);
      if (paidBy === undefined || paidBy === hash) throw new TesseraError("internal_error", `batch ${batch.id}: transaction ${hash} reverted, the batch is settled, and its settling transaction was not found`);
      await this.finish(chain, batch, paidBy, report);
      return;
    }
    await this.store.failPayoutBatch(batch.id, `transaction ${hash} reverted`, this.now());
    report.failed.push(batch.id);
    this.options.logger.warn({ batch: batch.id, tx: hash }, "payout batch reverted; its money is available again");
  }
}
