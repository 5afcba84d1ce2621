import { z } from "zod";
import {
  CheckError,
  CheckScore,
  CheckScores,
  ERROR_CODE_LIST,
  EmbedError,
  EmbedRequest,
  EmbedResult,
  Hardware,
  JobAssignment,
  MAX_MODELS_PER_NODE,
  MAX_NODE_CONCURRENCY,
  NodeCommandMessage,
  NodeId,
  ReceiptSign,
  ServedModel,
  ShardOffer,
  StageDrop,
  StageError,
  StageLoad,
  StageLoaded,
  StageTokenize,
  StageTokenized,
  StageUnload,
  StreamPart,
} from "@tessera/protocol";

/**
 * What replicas send each other over the bus (design.md "Messages"), as JSON. Replicas run the same code and share
 * one operator, but a message is still checked against these schemas before it moves anything: a malformed one (a
 * replica of another version, a stray publisher on the subject) is dropped with a log line.
 */

/** Same rule as `--replica-id` (config.ts REPLICA_ID); kept here so the bus needs nothing from the config module. */
export const ReplicaId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/);
const JobId = z.string().min(1).max(128);
const Reason = z.string().max(500);

/** A node whose session is on the beating replica, as the others need it to route jobs to it. */
export const NodeSummary = z.strictObject({
  id: NodeId,
  operator: NodeId,
  version: z.string().max(64),
  hardware: Hardware,
  models: z.array(ServedModel).max(MAX_MODELS_PER_NODE),
  max_concurrency: z.number().int().min(1).max(MAX_NODE_CONCURRENCY),
  draining: z.boolean(),
  /** Jobs on the node from every replica, as its owner counts them. */
  active_jobs: z.number().int().min(0).max(1_000_000),
  /**
   * When the node opened its session on the beating replica, seconds on the node's clock (NodeSession.openedAt): of
   * two replicas listing one node, the later session is the live one.
   */
  session_opened_at: z.number().int().min(0).max(1e11).optional(),
  /** The node session's smoothed round trip on the beating replica, milliseconds, once measured. */
  rtt_ms: z.number().min(0).max(600_000).optional(),
  /** The layer-span files the node offers (its last `stage.offer`), for the replica that leads sharded models. */
  stage_offers: z.array(ShardOffer).max(64).optional(),
  /** A pipeline the beating replica runs: its sharded model's split now, as that replica's models list shows it. */
  sharded: z
    .strictObject({
      model: z.string().max(256),
      layers: z.number().int().min(1).max(4096),
      stages: z.number().int().min(1).max(4096).nullable(),
      nodes: z.number().int().min(0).max(100_000),
      ready: z.boolean(),
    })
    .optional(),
});
export type NodeSummary = z.infer<typeof NodeSummary>;

/**
 * The last beat the beating replica heard from another: that beat's `sent_at` on the other's clock and how long the
 * beating replica held it before this beat. The other replica takes the bus's round trip from it (its clock only).
 */
const BeatEcho = z.strictObject({
  replica: ReplicaId,
  sent_at: z.number(),
  held_ms: z.number().min(0).max(600_000),
  /** The beating replica missed part of `replica`'s list (a delta it could not apply): its next beat should be whole. */
  resync: z.literal(true).optional(),
});

/** A node's load as a delta beat tells it when nothing else of its summary changed: [id, active_jobs, rtt_ms or null]. */
const NodeLoad = z.tuple([NodeId, NodeSummary.shape.active_jobs, z.number().min(0).max(600_000).nullable()]);
export type NodeLoad = z.infer<typeof NodeLoad>;

/**
 * A replica is alive, and the nodes whose sessions it holds now; `echoes` answers the other replicas' last beats, so
 * each can measure its round trip to this one over the bus.
 *
 * A whole beat (no `base`) lists every node it holds in `nodes`. A delta (`base`: the `sent_at` of the beat before it)
 * lists only what changed since that beat: `nodes` the summaries of nodes new or changed but for their load, `loads`
 * the nodes whose load alone changed, `left` the nodes it no longer holds. A receiver that did not hear the base whole
 * asks for a whole beat in its echo (`resync`). design.md, "Beats".
 *
 * A beat larger than the bus carries in one message goes in `parts` messages (`part` 0 first, all with the same
 * `sent_at`), each with some of its entries, the echoes on part 0 only. Every part says the replica is alive; the
 * nodes a whole beat no longer lists are known once all its parts arrived. A beat without `parts` is one message.
 */
export const ReplicaBeat = z
  .strictObject({
    type: z.literal("beat"),
    replica: ReplicaId,
    sent_at: z.number(),
    base: z.number().optional(),
    nodes: z.array(NodeSummary).max(100_000),
    loads: z.array(NodeLoad).max(100_000).optional(),
    left: z.array(NodeId).max(100_000).optional(),
    echoes: z.array(BeatEcho).max(1_000).optional(),
    part: z.number().int().min(0).optional(),
    // A part carries at least one entry (beatParts), and no replica holds more than a message's 100,000 nodes.
    parts: z.number().int().min(1).max(300_000).optional(),
  })
  .refine((beat) => (beat.part === undefined) === (beat.parts === undefined) && (beat.part ?? 0) < (beat.parts ?? 1), {
    message: "part and parts come together, with part below parts",
  })
  .refine((beat) => beat.base !== undefined || (beat.loads === undefined && beat.left === undefined), {
    message: "loads and left come only in a delta (with base)",
  });
export type ReplicaBeat = z.infer<typeof ReplicaBeat>;

/** One judgment of a node (trust/node-standing.ts `StandingJudgment`): a job segment's outcome or a check's verdict. */
const Judgment = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("outcome"), node: NodeId, outcome: z.enum(["completed", "failed", "timed_out", "stalled", "lost"]) }),
  z.strictObject({ kind: z.literal("check"), node: NodeId, passed: z.boolean() }),
]);
export type Judgment = z.infer<typeof Judgment>;

/**
 * What a replica decided about nodes, for every other replica to follow: it quarantined a node (a failed check) or
 * released it (its owner's word), or the judgments of one turn of its event loop, in order.
 */
export const StandingChange = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("standing"), replica: ReplicaId, node: NodeId, quarantined: z.boolean() }),
  z.strictObject({ type: z.literal("judgments"), replica: ReplicaId, judgments: z.array(Judgment).min(1).max(10_000) }),
]);
export type StandingChange = z.infer<typeof StandingChange>;

/** From the replica holding a job to the replica holding its node's session. */
export const JobCommand = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("assign"), from: ReplicaId, node: NodeId, job: JobAssignment }),
  z.strictObject({ type: z.literal("cancel"), from: ReplicaId, node: NodeId, job_id: JobId, reason: Reason }),
]);
export type JobCommand = z.infer<typeof JobCommand>;

/** From the replica holding a node's session back to the replica holding the job: the JobSink calls, one by one. */
export const JobReport = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("accepted"), node: NodeId, job_id: JobId }),
  z.strictObject({ type: z.literal("rejected"), node: NodeId, job_id: JobId, reason: Reason }),
  z.strictObject({ type: z.literal("part"), node: NodeId, job_id: JobId, part: StreamPart }),
  z.strictObject({ type: z.literal("lost"), node: NodeId, reason: Reason }),
  /** A pipeline (a sharded model led by the sending replica) found the job cannot run anywhere (JobSink.failed). */
  z.strictObject({ type: z.literal("failed"), node: NodeId, job_id: JobId, code: z.enum(ERROR_CODE_LIST as [string, ...string[]]), message: Reason }),
]);
export type JobReport = z.infer<typeof JobReport>;

/**
 * The reports one replica made for another in one turn of its event loop, in order: a node's frame often carries
 * several parts, and one message for them all costs the two replicas a fraction of one message per part. `from` is
 * the sending replica: a `lost` counts only from the replica the receiver routes the node through now (a node whose
 * session moved on is lost for every job of the old route already, and a late `lost` from it must not take the jobs
 * sent by the new route).
 */
export const JobReports = z.strictObject({ type: z.literal("reports"), from: ReplicaId, reports: z.array(JobReport).min(1).max(10_000) });
export type JobReports = z.infer<typeof JobReports>;

/** What a replica may send a node held by another (workers/node-messenger.ts `NodeBoundMessage`): never a job, never a ping. */
const NodeBound = z.discriminatedUnion("type", [StageLoad, StageUnload, StageDrop, StageTokenize, NodeCommandMessage, CheckScore, ReceiptSign, EmbedRequest]);
/** A node's answers that go back to the replica that asked (stage answers to the leader, check scores, embeddings). */
const NodeAnswer = z.discriminatedUnion("type", [StageLoaded, StageTokenized, StageError, CheckScores, CheckError, EmbedResult, EmbedError]);
export type NodeAnswer = z.infer<typeof NodeAnswer>;

/**
 * Traffic with node sessions another replica holds (session-relay.ts): a message down to a node, a node's answer to
 * the replica that asked, and "that node is not here (any more)".
 */
export const SessionEnvelope = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("to_node"), from: ReplicaId, node: NodeId, message: NodeBound }),
  z.strictObject({ type: z.literal("from_node"), node: NodeId, message: NodeAnswer }),
  z.strictObject({ type: z.literal("node_lost"), node: NodeId }),
]);
export type SessionEnvelope = z.infer<typeof SessionEnvelope>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeBusMessage(message: ReplicaBeat | JobCommand | JobReports | StandingChange | SessionEnvelope): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

/** The message `data` holds, or a reason it is not one of `schema`'s. */
export function decodeBusMessage<T>(schema: z.ZodType<T>, data: Uint8Array): { ok: true; message: T } | { ok: false; why: string } {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return { ok: false, why: "not JSON" };
  }
  const parsed = schema.safeParse(value);
  return parsed.success ? { ok: true, message: parsed.data } : { ok: false, why: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ").slice(0, 300) };
}
