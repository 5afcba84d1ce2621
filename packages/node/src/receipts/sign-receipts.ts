import { type ReceiptRefused, type ReceiptSign, type ReceiptSigned, type Signer, signReceipt } from "@tessera/protocol";
import type { NodeLogger } from "../logger.js";
import { checkReceiptAgainst } from "./check-receipt.js";
import type { ServedJournal } from "./served-journal.js";

/**
 * The node's answer to `receipt.sign`: its BIP-340 signature over the receipt (node domain) when the receipt matches
 * what the journal says it served, a refusal with the reason otherwise. Never throws.
 */
export function answerReceiptSign(message: ReceiptSign, deps: { journal: ServedJournal; signer: Signer; logger: NodeLogger }): ReceiptSigned | ReceiptRefused {
  const body = message.receipt;
  const decision = checkReceiptAgainst(body, deps.journal.entriesFor(body.job_id), deps.signer.publicKeyHex);
  if (!decision.sign) {
    deps.logger.warn({ receipt: body.receipt_id, job: body.job_id, code: decision.code }, `receipt refused: ${decision.reason}`);
    return { type: "receipt.refused", receipt_id: body.receipt_id, reason: `${decision.code}: ${decision.reason}`.slice(0, 1024) };
  }
  deps.logger.info({ receipt: body.receipt_id, job: body.job_id, amount: body.amount, fee: body.fee }, "receipt signed");
  return { type: "receipt.signed", receipt_id: body.receipt_id, signature: signReceipt(deps.signer, body, "node") };
}
