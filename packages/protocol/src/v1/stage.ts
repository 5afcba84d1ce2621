import { z } from "zod";
import { ERROR_CODE_LIST } from "../errors.js";
import { ChatMessage } from "./chat-message.js";
import { MAX_BYTES, NodeByteCount, NodeModelId, nodeMessage } from "./node-fields.js";

/**
 * Stage messages of sharded (pipeline) inference, carried as JSON text frames on the node's session. Activations
 * travel as binary frames (see `activation-frame.ts`). A sharded model is identified by the SHA-256 of its GGUF file.
 */
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lowercase hex characters");
export const StageId = z.number().int().min(1).max(2 ** 32 - 1);
export const RequestId = z.string().min(1).max(128);

/** Per-layer time a node may report: at most an hour, as `stage.loaded`. */
export const MAX_MS_PER_LAYER = 3_600_000;

/**
 * One GGUF file a node has locally and offers to hold layer spans of. `span_bytes_per_layer` and `ms_per_layer` say
 * what a span costs on this node's stage backend (optional: older daemons send neither, and placement then divides
 * free memory by the file's bytes and assumes the default speed). The coordinator checks them against the file's own
 * bytes (coordinator sharding/offer-check.ts) and refuses an offer that cannot be true.
 */
export const ShardOffer = z.object({
  model: NodeModelId,
  sha256: Sha256Hex,
  layer_count: z.number().int().min(1).max(4096),
  /** The largest layer's tensors as stored in the file: a property of the file, equal in every honest offer of it. */
  bytes_per_layer: z.number().int().min(1).max(MAX_BYTES),
  free_memory_bytes: NodeByteCount,
  /**
   * Memory one layer takes on this node's stage backend, where placement divides free memory by it: the largest
   * layer's weights as the backend allocates them plus one request's KV cache at the span's full context.
   */
  span_bytes_per_layer: z.number().int().min(1).max(MAX_BYTES).optional(),
  /** This node's measured time per layer of one decode step on that backend, ms (a probe span at daemon start). */
  ms_per_layer: z.number().positive().max(MAX_MS_PER_LAYER).optional(),
});
export type ShardOffer = z.infer<typeof ShardOffer>;

/** node → coordinator, each time the session opens: the shards this node can hold. Replaces any earlier offer. */
export const StageOffer = z.object({ type: z.literal("stage.offer"), shards: z.array(ShardOffer).max(64) });
export type StageOffer = z.infer<typeof StageOffer>;

/** The offer fields a refusal may name as the one at fault (`OfferRefused.param`). */
export const SHARD_OFFER_PARAMS = ["layer_count", "bytes_per_layer", "span_bytes_per_layer", "ms_per_layer"] as const;
export type ShardOfferParam = (typeof SHARD_OFFER_PARAMS)[number];

/**
 * coordinator → node: the coordinator refused this node's offer of one file (a figure in it cannot be true; coordinator
 * sharding/offer-check.ts), so it places no span of that file on the node (an earlier accepted offer of it, if any,
 * stands). Sent once per refused offer, i.e. at most once each time the session opens; nothing answers it. `code` is
 * a stable error code (today always `bad_request`); `param` names the offer field at fault, read leniently (any
 * snake_case name, so a newer coordinator's field still parses); `message` is the coordinator's reason, for the
 * operator. Not a `stage.` message on purpose: it carries no span work, and a coordinator with replicas routes a
 * node's stage answers to whichever replica last sent it a `stage.` message (bus/session-relay.ts), which a refusal
 * must not change. Added after `stage.offer`: a daemon that predates it fails to parse it and ignores it (logging
 * "ignored malformed coordinator message"), as it does any message type it does not know.
 */
export const OfferRefused = z.object({
  type: z.literal("offer.refused"),
  model: NodeModelId,
  sha256: Sha256Hex,
  code: z.enum(ERROR_CODE_LIST as [string, ...string[]]),
  param: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "param must be a field name such as ms_per_layer").optional(),
  /** One line: the daemon logs it as part of its own line. */
  message: nodeMessage(4096).regex(/^[^\n\r\u2028\u2029]*$/, "message must be one line"),
});
export type OfferRefused = z.infer<typeof OfferRefused>;

/** coordinator → node: load layers [start, end) of the file with this SHA-256 as stage `stage_id`. */
export const StageLoad = z.object({
  type: z.literal("stage.load"),
  stage_id: StageId,
  sha256: Sha256Hex,
  start: z.number().int().min(0),
  end: z.number().int().min(1),
});
export type StageLoad = z.infer<typeof StageLoad>;

/** node → coordinator: the stage is ready; `ms_per_layer` measured by a one-token warm-up forward. */
export const StageLoaded = z.object({
  type: z.literal("stage.loaded"),
  stage_id: StageId,
  ms_per_layer: z.number().min(0).max(MAX_MS_PER_LAYER),
});
export type StageLoaded = z.infer<typeof StageLoaded>;

/** coordinator → node: forget the stage (free its weights and caches). */
export const StageUnload = z.object({ type: z.literal("stage.unload"), stage_id: StageId });

/** coordinator → node: drop a request's KV cache on every stage this node holds. */
export const StageDrop = z.object({ type: z.literal("stage.drop"), request_id: RequestId });
export type StageDrop = z.infer<typeof StageDrop>;

/** coordinator → stage-0 node: turn chat messages into prompt tokens as the embedded backend would. */
export const StageTokenize = z.object({
  type: z.literal("stage.tokenize"),
  stage_id: StageId,
  request_id: RequestId,
  messages: z.array(ChatMessage).min(1),
  /** Ask for the vocabulary as byte pieces too (the coordinator caches it per model). */
  want_vocab: z.boolean().default(false),
});
export type StageTokenize = z.infer<typeof StageTokenize>;

/**
 * The vocabulary as bytes: token `i` is `base64decode(bytes)[offsets[i] .. offsets[i+1])` (SentencePiece rules:
 * `▁` → space, `<0xNN>` → that byte, control tokens → nothing).
 */
export const VocabPieces = z.object({ bytes: z.string(), offsets: z.array(z.number().int().min(0)) });
export type VocabPieces = z.infer<typeof VocabPieces>;

export const StageTokenized = z.object({
  type: z.literal("stage.tokenized"),
  request_id: RequestId,
  tokens: z.array(z.number().int().min(0)),
  /** Tokens that end generation (end of sequence, end of turn). */
  eog_tokens: z.array(z.number().int().min(0)),
  vocab: VocabPieces.optional(),
});
export type StageTokenized = z.infer<typeof StageTokenized>;

/** node → coordinator: a load, tokenize or forward failed. */
export const StageError = z.object({
  type: z.literal("stage.error"),
  stage_id: StageId.optional(),
  request_id: RequestId.optional(),
  code: z.enum(ERROR_CODE_LIST as [string, ...string[]]),
  message: nodeMessage(4096),
});
export type StageError = z.infer<typeof StageError>;

export const StageCoordinatorMessage = z.discriminatedUnion("type", [StageLoad, StageUnload, StageDrop, StageTokenize]);
export type StageCoordinatorMessage = z.infer<typeof StageCoordinatorMessage>;
export const StageNodeMessage = z.discriminatedUnion("type", [StageOffer, StageLoaded, StageTokenized, StageError]);
export type StageNodeMessage = z.infer<typeof StageNodeMessage>;
