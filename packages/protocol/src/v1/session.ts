import { z } from "zod";
import { ChatMessage } from "./chat-message.js";
import { ModelName, Sampling } from "./sampling.js";
import { nodeMessage } from "./node-fields.js";
import { StreamPart } from "./stream-part.js";
import { PromptTokenIds } from "./prompt-tokens.js";
import { NodeCommandMessage } from "./node-command.js";
import { CheckError, CheckScore, CheckScores } from "./check.js";
import { ReceiptRefused, ReceiptSign, ReceiptSigned } from "./receipt.js";
import { EmbedError, EmbedRequest, EmbedResult } from "./embeddings.js";
import { StageError, StageLoad, StageDrop, StageLoaded, StageOffer, OfferRefused, StageTokenize, StageTokenized, StageUnload } from "./stage.js";

/**
 * Messages on a node's WebSocket session (`GET /api/v1/nodes/session`, upgrade request signed).
 * The node dials out; the coordinator pushes jobs down; stream parts come back up. Text frames, one JSON each.
 */
export const SESSION_PATH = "/api/v1/nodes/session";

/**
 * A job as the node receives it. `assistant_prefix` continues an answer another node began (failover).
 * `raw_prompt`: `messages` is exactly one user message whose content is the entire prompt, fed as is with no chat
 * template (`/v1/completions`); a continuation then runs on prompt + prefix. Only nodes whose model announces the
 * `raw_prompt` feature are sent one.
 */
export const JobAssignment = z.object({
  type: z.literal("job.assign"),
  job_id: z.string(),
  model: ModelName,
  messages: z.array(ChatMessage).min(1),
  raw_prompt: z.boolean().optional(),
  sampling: Sampling,
  assistant_prefix: z.string().optional(),
  /** The token ids behind `assistant_prefix`, when the nodes that produced it reported them. */
  assistant_prefix_tokens: z.array(z.number().int().min(0)).optional(),
  /**
   * The prompt as token ids, as the job's first node rendered it (prompt-tokens.ts): the node runs exactly these
   * instead of rendering `messages` itself, so a continuation on another backend joins exactly. It refuses ids that
   * are not its vocabulary's (`bad_request`, param `prompt_tokens`). Never sent with tools or a raw prompt.
   */
  prompt_tokens: PromptTokenIds.optional(),
});
export type JobAssignment = z.infer<typeof JobAssignment>;

export const JobCancel = z.object({ type: z.literal("job.cancel"), job_id: z.string(), reason: z.string() });
export const Ping = z.object({ type: z.literal("ping"), sent_at: z.number() });

/** Stage messages (sharded models) were added later; a daemon without a stage host ignores them. */
/** `node.command` (node-command.ts): a model install/remove the node's operator queued. */
/** `check.score` (check.ts): score another node's answer, for a spot check. */
/** `receipt.sign` (receipt.ts): check and sign the receipt for work the node served. */
/** `embed.request` (embeddings.ts): compute embedding vectors; answered by `embed.result` or `embed.error`. */
/** `offer.refused` (stage.ts): the node's offer of a span file was refused, and why; nothing answers it. */
export const CoordinatorMessage = z.discriminatedUnion("type", [
  JobAssignment, JobCancel, Ping, StageLoad, StageUnload, StageDrop, StageTokenize, OfferRefused, NodeCommandMessage, CheckScore, ReceiptSign, EmbedRequest,
]);
export type CoordinatorMessage = z.infer<typeof CoordinatorMessage>;

export const JobAccept = z.object({ type: z.literal("job.accept"), job_id: z.string() });
export const JobReject = z.object({ type: z.literal("job.reject"), job_id: z.string().max(128), reason: nodeMessage(4096) });
export const JobPart = z.object({ type: z.literal("job.part"), job_id: z.string(), part: StreamPart });
export const Pong = z.object({ type: z.literal("pong"), sent_at: z.number() });
/**
 * The node takes no new jobs (its owner is back, it is stopping, …). `reason` (optional: older daemons send none) is
 * one of `DRAIN_REASONS`; it is read leniently, so that a reason this coordinator does not know still drains the node
 * and counts as `unspecified` (`drainReasonOf`) instead of the whole message being refused.
 */
export const Draining = z.object({ type: z.literal("draining"), reason: z.string().max(64).optional().catch(undefined) });
export const Goodbye = z.object({ type: z.literal("goodbye") });

export const NodeMessage = z.discriminatedUnion("type", [
  JobAccept, JobReject, JobPart, Pong, Draining, Goodbye, StageOffer, StageLoaded, StageTokenized, StageError, CheckScores, CheckError, ReceiptSigned, ReceiptRefused, EmbedResult, EmbedError,
]);
export type NodeMessage = z.infer<typeof NodeMessage>;

/**
 * A node's text frame carries one message or a JSON array of messages (what the daemon produced in one event-loop
 * turn, coalesced into one write). Returns the messages, unvalidated; throws SyntaxError when the frame is not JSON.
 */
export function splitNodeFrame(text: string): unknown[] {
  const payload: unknown = JSON.parse(text);
  return Array.isArray(payload) ? payload : [payload];
}
