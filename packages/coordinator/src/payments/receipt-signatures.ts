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

export interface ReceiptSignaturesDeps {
  /** To find the node's live session (offering its unsigned receipts when the session opens here). */
  registry: Pick<NodeRegistry, "get">;
  /** How a receipt reaches its node now, wherever its session is; the replica holding it records the answer. */
  messenger: Pick<NodeMessenger, "send">;
  store: Pick<Store, "listUnsignedReceipts" | "setReceiptNodeSignature" | "getReceipt">;
  logger: Logger;
  /** Checks the nodes' signatures: one per settled job, so the coordinator's fast verifier. */
  verifier: SignatureVerifier;
  /** Where each check waits for the I/O already in (after-io-queue.ts): receipts come back in bursts after jobs end. */
  afterIo: Pick<AfterIoQueue, "run">;
  metrics?: { outcome(outcome: ReceiptSignatureOutcome): void };
}

/**
 * Gets each receipt signed by the node that served it (docs/receipts.md). The coordinator issues and countersigns
 * a receipt when a job settles; it then asks the node, over the node's session, to check the receipt against what
 * it served and sign it (`receipt.sign`). A node that is offline is asked when its next session opens. A signature is
 * stored only when it is the receipt's own node's BIP-340 signature over the receipt in the node domain; anything
 * else is logged, counted `invalid` and dropped. A refusal is logged with the node's reason and counted: the receipt
 * stays unsigned by the node, which is itself the record that the node disputes it.
 */
export class ReceiptSignatures {
  /**
   * Receipts each node refused since this process started: not offered again, so that refusals, which stay unsigned
   * and oldest, cannot crowd newer receipts out of the 100 offered per session. Kept in memory only: after a restart
   * each is offered (and refused) once more.
   */
  private readonly refusedBy = new Map<string, Set<string>>();

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

  /** A node's answer to `receipt.sign`. Resolves with what became of it; never throws. */
  async onMessage(nodeId: string, message: ReceiptSigned | ReceiptRefused): Promise<ReceiptSignatureOutcome> {
    const fields = { node: nodeId.slice(0, 12), receipt: message.receipt_id };
    try {
      if (message.type === "receipt.refused") {
        this.deps.logger.warn({ ...fields, reason: message.reason }, "node refused to sign a receipt");
        const refused = this.refusedBy.get(nodeId) ?? new Set<string>();
        if (refused.size < MAX_LISTED) refused.add(message.receipt_id);
        this.refusedBy.set(nodeId, refused);
        return this.count("refused");
      }
      const receipt = await this.deps.store.getReceipt(message.receipt_id);
      if (!receipt || receipt.node_id !== nodeId) {
        // Another node's receipt, or none at all: never stored, and the node is not told which.
        this.deps.logger.warn(fields, receipt ? "node signed a receipt of another node; ignored" : "node signed an unknown receipt; ignored");
        return this.count("invalid");
      }
      if (!(await this.deps.afterIo.run(() => this.deps.verifier.verify(message.signature, receiptDigest(receipt, "node"), nodeId)))) {
        this.deps.logger.warn(fields, "node's receipt signature does not verify; ignored");
        return this.count("invalid");
      }
      // An answer to a receipt offered twice (a session reopened before the first answer landed) is counted once.
      if (receipt.node_signature === message.signature) return "signed";
      if (!(await this.deps.store.setReceiptNodeSignature(receipt.receipt_id, message.signature))) {
        // Signed before (BIP-340 signatures are randomised, so a second valid one may differ): the first stays.
        this.deps.logger.info(fields, "receipt was already signed by its node; kept the first signature");
        return "signed";
      }
      this.deps.logger.info(fields, "receipt signed by its node");
      return this.count("signed");
    } catch (err) {
      this.deps.logger.error({ ...fields, err }, "could not record the node's answer to a receipt");
      return "invalid";
    }
  }

  private count(outcome: ReceiptSignatureOutcome): ReceiptSignatureOutcome {
    this.deps.metrics?.outcome(outcome);
    return outcome;
  }
}
