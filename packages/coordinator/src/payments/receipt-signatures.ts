import { type AfterIoQueue, type Receipt, type ReceiptRefused, type ReceiptSigned, type SignatureVerifier, receiptBodyOf, receiptDigest } from "@tessera/protocol";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import type { NodeMessenger } from "../workers/node-messenger.js";
import type { Store } from "../store/types.js";

/** What became of one `receipt.signed` / `receipt.refused` from a node (`tessera_receipt_signatures_total`). */
export type ReceiptSignatureOutcome = "signed" | "refused" | "invalid";

/** Receipts offered to a node each time its session opens, oldest first; the rest at its next session. */
export const UNSIGNED_OFFERED_PER_SESSION = 100;
/** The most unsigned receipts read for one node at once (the store's own cap on a list). */
const MAX_LISTED = 1000;
/**
 * How long nodes' signatures are gathered before they are checked and stored together: one read and one write for
 * all of them instead of two statements a receipt. A receipt comes back a few milliseconds after its job ends and
 * nothing waits on its node's signature, so 100 ms costs nothing and gathers a busy replica's answers in a few writes.
 */
export const RECEIPT_SIGNATURES_FLUSH_MS = 100;
/** The most signatures checked and stored together (the store's own cap is 500): that many are stored at once. */
export const MAX_GATHERED_SIGNATURES = 200;

/** A node's signature waiting for the next flush, and who waits for what became of it. */
interface GatheredSignature {
  nodeId: string;
  message: ReceiptSigned;
  done(outcome: ReceiptSignatureOutcome): void;
}

export interface ReceiptSignaturesDeps {
  /** To find the node's live session (offering its unsigned receipts when the session opens here). */
  registry: Pick<NodeRegistry, "get">;
  /** How a receipt reaches its node now, wherever its session is; the replica holding it records the answer. */
  messenger: Pick<NodeMessenger, "send">;
  store: Pick<Store, "listUnsignedReceipts" | "setReceiptNodeSignatures" | "getReceipts">;
  logger: Logger;
  /** Checks the nodes' signatures: one per settled job, so the coordinator's fast verifier. */
  verifier: SignatureVerifier;
  /** Where each check waits for the I/O already in (after-io-queue.ts): receipts come back in bursts after jobs end. */
  afterIo: Pick<AfterIoQueue, "run">;
  metrics?: { outcome(outcome: ReceiptSignatureOutcome): void };
  /** How long signatures are gathered (RECEIPT_SIGNATURES_FLUSH_MS unless a test says otherwise). */
  flushMs?: number;
}

/**
 * Gets each receipt signed by the node that served it (docs/receipts.md). The coordinator issues and countersigns
 * a receipt when a job settles; it then asks the node, over the node's session, to check the receipt against what
 * it served and sign it (`receipt.sign`). A node that is offline is asked when its next session opens. A signature is
 * stored only when it is the receipt's own node's BIP-340 signature over the receipt in the node domain; anything
 * else is logged, counted `invalid` and dropped. A refusal is logged with the node's reason and counted: the receipt
 * stays unsigned by the node, which is itself the record that the node disputes it. Signatures are gathered for
 * RECEIPT_SIGNATURES_FLUSH_MS and stored together; `flush` stores what is gathered (at shutdown).
 */
export class ReceiptSignatures {
  /**
   * Receipts each node refused since this process started: not offered again, so that refusals, which stay unsigned
   * and oldest, cannot crowd newer receipts out of the 100 offered per session. Kept in memory only: after a restart
   * each is offered (and refused) once more.
   */
  private readonly refusedBy = new Map<string, Set<string>>();
  private gathered: GatheredSignature[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The flushes under way, in order. */
  private storing: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ReceiptSignaturesDeps) {}

  /** Asks the receipt's node to sign it when it is online (on any replica); otherwise it is offered at its next session. */
  request(receipt: Receipt): void {
    if (receipt.node_signature !== null) return;
    this.deps.messenger.send(receipt.node_id, { type: "receipt.sign", receipt: receiptBodyOf(receipt) });
  }

  /** A node's session opened: offers it up to 100 receipts it has not signed, oldest first. Never throws. */
  async onSessionOpen(nodeId: string): Promise<number> {
    try {
      const refused = this.refusedBy.get(nodeId);
      const listed = await this.deps.store.listUnsignedReceipts(nodeId, Math.min(MAX_LISTED, UNSIGNED_OFFERED_PER_SESSION + (refused?.size ?? 0)));
      const unsigned = listed.filter((r) => !refused?.has(r.receipt_id)).slice(0, UNSIGNED_OFFERED_PER_SESSION);
      const session = this.deps.registry.get(nodeId)?.session;
      if (!session) return 0;
      for (const receipt of unsigned) session.send({ type: "receipt.sign", receipt: receiptBodyOf(receipt) });
      if (unsigned.length > 0) this.deps.logger.info({ node: nodeId.slice(0, 12), receipts: unsigned.length }, "offered unsigned receipts to the node");
      return unsigned.length;
    } catch (err) {
      this.deps.logger.error({ node: nodeId.slice(0, 12), err }, "could not offer unsigned receipts to the node");
      return 0;
    }
  }

  /** A node's answer to `receipt.sign`. Resolves with what became of it, a signature once it is stored; never throws. */
  async onMessage(nodeId: string, message: ReceiptSigned | ReceiptRefused): Promise<ReceiptSignatureOutcome> {
    if (message.type === "receipt.refused") {
      this.deps.logger.warn({ node: nodeId.slice(0, 12), receipt: message.receipt_id, reason: message.reason }, "node refused to sign a receipt");
      const refused = this.refusedBy.get(nodeId) ?? new Set<string>();
      if (refused.size < MAX_LISTED) refused.add(message.receipt_id);
      this.refusedBy.set(nodeId, refused);
      return this.count("refused");
    }
    return new Promise<ReceiptSignatureOutcome>((done) => {
      this.gathered.push({ nodeId, message, done });
      if (this.gathered.length >= MAX_GATHERED_SIGNATURES) this.startFlush();
      else this.timer ??= setTimeout(() => this.startFlush(), this.deps.flushMs ?? RECEIPT_SIGNATURES_FLUSH_MS);
    });
  }

  /** Checks and stores the signatures gathered so far, and waits for every flush under way. Never throws. */
  async flush(): Promise<void> {
    this.startFlush();
    await this.storing;
  }

  private startFlush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.gathered.splice(0);
    if (batch.length > 0) this.storing = this.storing.then(() => this.store(batch));
  }

  /** One read of the batch's receipts, a check of each signature, one write of the valid ones. Never throws. */
  private async store(batch: GatheredSignature[]): Promise<void> {
    const pending = new Set(batch);
    /** Ends `item` with `outcome`, counted unless it is a signature stored before; logged when `log` says so. */
    const end = (item: GatheredSignature, outcome: ReceiptSignatureOutcome, options: { counted: boolean; log?: { level: "info" | "warn"; text: string } }) => {
      if (!pending.delete(item)) return;
      if (options.log) this.deps.logger[options.log.level]({ node: item.nodeId.slice(0, 12), receipt: item.message.receipt_id }, options.log.text);
      item.done(options.counted ? this.count(outcome) : outcome);
    };
    try {
      const found = new Map((await this.deps.store.getReceipts([...new Set(batch.map((b) => b.message.receipt_id))])).map((r) => [r.receipt_id, r]));
      const valid = await Promise.all(
        batch.map(async (item) => {
          const receipt = found.get(item.message.receipt_id);
          if (!receipt || receipt.node_id !== item.nodeId) {
            // Another node's receipt, or none at all: never stored, and the node is not told which.
            end(item, "invalid", { counted: true, log: { level: "warn", text: receipt ? "node signed a receipt of another node; ignored" : "node signed an unknown receipt; ignored" } });
            return false;
          }
          if (!(await this.deps.afterIo.run(() => this.deps.verifier.verify(item.message.signature, receiptDigest(receipt, "node"), item.nodeId)))) {
            end(item, "invalid", { counted: true, log: { level: "warn", text: "node's receipt signature does not verify; ignored" } });
            return false;
          }
          // An answer to a receipt offered twice (a session reopened before the first answer landed) is counted once.
          if (receipt.node_signature === item.message.signature) {
            end(item, "signed", { counted: false });
            return false;
          }
          return true;
        }),
      );
      // The first valid signature of each receipt is written; a second one in the same batch is one signed before.
      const firsts = new Map<string, GatheredSignature>();
      batch.forEach((item, i) => {
        if (valid[i] && !firsts.has(item.message.receipt_id)) firsts.set(item.message.receipt_id, item);
      });
      const stored = new Set(await this.deps.store.setReceiptNodeSignatures([...firsts.values()].map((item) => ({ id: item.message.receipt_id, signature: item.message.signature }))));
      for (const item of pending) {
        const first = firsts.get(item.message.receipt_id) === item;
        // Signed before (BIP-340 signatures are randomised, so a second valid one may differ): the first stays.
        if (first && stored.has(item.message.receipt_id)) end(item, "signed", { counted: true, log: { level: "info", text: "receipt signed by its node" } });
        else end(item, "signed", { counted: false, log: { level: "info", text: "receipt was already signed by its node; kept the first signature" } });
      }
    } catch (err) {
      this.deps.logger.error({ receipts: pending.size, err }, "could not record nodes' answers to receipts");
      for (const item of pending) end(item, "invalid", { counted: false });
    }
  }

  private count(outcome: ReceiptSignatureOutcome): ReceiptSignatureOutcome {
    this.deps.metrics?.outcome(outcome);
    return outcome;
  }
}
