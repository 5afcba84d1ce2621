import type { ReceiptBody } from "@tessera/protocol";
import type { ServedEntry } from "./served-journal.js";

/**
 * Whether the node signs a receipt the coordinator issued, judged only against what the node itself recorded serving
 * (served-journal.ts). Pure. A refusal carries a stable code and the reason in words; the node sends both back in
 * `receipt.refused` and the receipt stays unsigned by the node (docs/receipts.md).
 */
export type RefusalCode =
  | "not_this_node"
  | "fee_exceeds_amount"
  | "job_not_served"
  | "model_mismatch"
  | "output_tokens_mismatch"
  | "result_commitment_mismatch";

export type ReceiptDecision = { sign: true } | { sign: false; code: RefusalCode; reason: string };

const refuse = (code: RefusalCode, reason: string): ReceiptDecision => ({ sign: false, code, reason });

/**
 * Checks one receipt against one journal entry (undefined: the node has no record of the job):
 * - the receipt must name this node, and its fee may not exceed its amount;
 * - the node must have served the job, with the model file the receipt names;
 * - output tokens: a turn the node finished by itself must match exactly; a turn cut short (cancelled, lost, failed,
 *   or ended by a stop sequence the coordinator saw first) may be credited fewer than the node streamed, never more;
 *   a turn the node only recorded accepting (it was killed mid-stream) is not checked;
 * - a result commitment on the receipt must be the node's own; when the node made one for an answer it finished, the
 *   receipt must carry it (a stop sequence may have cut the answer, and the commitment with it).
 */
export function checkReceipt(body: ReceiptBody, entry: ServedEntry | undefined, ownNodeId: string): ReceiptDecision {
  if (body.node_id !== ownNodeId) return refuse("not_this_node", `the receipt names node ${body.node_id}, not this node (${ownNodeId})`);
  if (body.fee > body.amount) return refuse("fee_exceeds_amount", `the fee (${body.fee}) is larger than the amount (${body.amount})`);
  if (!entry || entry.job_id !== body.job_id) return refuse("job_not_served", `this node has no record of serving job ${body.job_id}`);
  if (body.model_sha256 !== entry.model_sha256) {
    return refuse("model_mismatch", `the receipt says model file ${body.model_sha256 ?? "none"}, the node served ${entry.model_sha256 ?? "without a model file"}`);
  }
  if (entry.output_tokens !== null) {
    const exact = entry.end === "finished" && !entry.stop;
    if (exact ? body.output_tokens !== entry.output_tokens : body.output_tokens > entry.output_tokens) {
      return refuse("output_tokens_mismatch", `the receipt says ${body.output_tokens} output tokens, the node streamed ${entry.output_tokens} (${entry.end})`);
    }
  }
  if (body.result_commitment !== null && body.result_commitment !== entry.result_commitment) {
    return refuse("result_commitment_mismatch", `the receipt carries result commitment ${body.result_commitment}, which the node did not make`);
  }
  if (body.result_commitment === null && entry.result_commitment !== null && entry.end === "finished" && !entry.stop) {
    return refuse("result_commitment_mismatch", `the receipt leaves out the node's result commitment ${entry.result_commitment}`);
  }
  return { sign: true };
}

/**
 * Checks a receipt against every segment of its job the node served: signs when one of them matches, otherwise
 * refuses with the reason the latest one gave.
 */
export function checkReceiptAgainst(body: ReceiptBody, entries: readonly ServedEntry[], ownNodeId: string): ReceiptDecision {
  if (entries.length === 0) return checkReceipt(body, undefined, ownNodeId);
  let last: ReceiptDecision = { sign: true };
  for (const entry of entries) {
    last = checkReceipt(body, entry, ownNodeId);
    if (last.sign) return last;
  }
  return last;
}
