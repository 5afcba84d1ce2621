import { z } from "zod";
import { ModelName } from "./sampling.js";
import { NodeByteCount, nodeMessage, nodeText } from "./node-fields.js";

/**
 * Node commands: an operator asks one of their nodes to install or remove a model through the coordinator.
 *
 *   POST /api/v1/nodes/:id/commands            {type, model}            → NodeCommandView (201)
 *   GET  /api/v1/nodes/:id/commands                                     → {commands: NodeCommandView[]}
 *   POST /api/v1/nodes/:id/commands/:cid/report NodeCommandReport (signed by the node) → NodeCommandView
 *
 * The first two are authorised as the node's operator (a request signed with the node key, or an operator token);
 * never by an API key. Delivery: pushed at once down the node's session as `node.command`, and repeated in every
 * heartbeat answer while the command is still `queued` (the daemon ignores ids it has already taken).
 */
export const NODE_COMMAND_TYPES = ["model_install", "model_remove"] as const;
export const NodeCommandType = z.enum(NODE_COMMAND_TYPES);
export type NodeCommandType = z.infer<typeof NodeCommandType>;

export const NODE_COMMAND_STATUSES = ["queued", "running", "succeeded", "failed"] as const;
export const NodeCommandStatus = z.enum(NODE_COMMAND_STATUSES);
export type NodeCommandStatus = z.infer<typeof NodeCommandStatus>;

/** A model name as a command takes it: trimmed, non-empty, no whitespace or control characters inside. */
export const CommandModelName = ModelName.refine((s) => s.trim() === s && /^[^\s\x00-\x1f\x7f]+$/.test(s), {
  message: "model must be a non-empty name without spaces, e.g. qwen2.5:7b",
});

/** `POST /api/v1/nodes/:id/commands` body. The coordinator stamps the id and `issued_at`. */
export const NodeCommandCreate = z.strictObject({
  type: NodeCommandType,
  model: CommandModelName,
});
export type NodeCommandCreate = z.infer<typeof NodeCommandCreate>;

/** A command as the node receives it (session push and heartbeat answer). `issued_at` is ISO 8601. */
export const NodeCommand = z.object({
  id: z.string().min(1).max(128),
  type: NodeCommandType,
  model: CommandModelName,
  issued_at: z.string(),
});
export type NodeCommand = z.infer<typeof NodeCommand>;

/** Coordinator → node session message. */
export const NodeCommandMessage = z.object({ type: z.literal("node.command"), command: NodeCommand });
export type NodeCommandMessage = z.infer<typeof NodeCommandMessage>;

/**
 * Node → coordinator progress and result (`POST …/commands/:cid/report`, signed by the node key). `running` may
 * repeat with progress; `succeeded` and `failed` are final (`error` is a stable error code, `error_message` text).
 */
export const NodeCommandReport = z.strictObject({
  status: z.enum(["running", "succeeded", "failed"]),
  /** 0..1 where the backend reports sizes. */
  progress: z.number().min(0).max(1).optional(),
  /** The backend's own words for the current step (`pulling manifest`, `verifying sha256 digest`, …). */
  detail: nodeText(256).optional(),
  completed_bytes: NodeByteCount.optional(),
  total_bytes: NodeByteCount.optional(),
  error: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "error must be an error code such as internal_error").optional(),
  error_message: nodeMessage(1024).optional(),
});
export type NodeCommandReport = z.infer<typeof NodeCommandReport>;

export interface NodeCommandView {
  id: string;
  node_id: string;
  type: NodeCommandType;
  model: string;
  status: NodeCommandStatus;
  progress: number | null;
  /** Live figures while running (kept in the coordinator's memory, not the store). */
  detail?: string;
  completed_bytes?: number;
  total_bytes?: number;
  error: string | null;
  issued_at: string;
  updated_at: string;
}

export function nodeCommandsPath(nodeId: string): string {
  return `/api/v1/nodes/${nodeId}/commands`;
}

export function nodeCommandReportPath(nodeId: string, commandId: string): string {
  return `/api/v1/nodes/${nodeId}/commands/${encodeURIComponent(commandId)}/report`;
}
