import { z } from "zod";
import { ServedModel } from "./node-register.js";
import { MAX_GPUS_PER_NODE, MAX_MODELS_PER_NODE, MAX_NODE_CONCURRENCY, NodeMemoryMb, NodeModelId, nodeText } from "./node-fields.js";
import type { NodeCommand } from "./node-command.js";

export const GpuStats = z.object({
  name: nodeText(128),
  memory_total_mb: NodeMemoryMb,
  memory_used_mb: NodeMemoryMb,
  utilization_pct: z.number().min(0).max(100),
  temperature_c: z.number().min(-100).max(200).optional(),
  power_w: z.number().min(0).max(100_000).optional(),
});
export type GpuStats = z.infer<typeof GpuStats>;

/** `POST /api/v1/nodes/heartbeat` body, every 30 s. */
export const NodeHeartbeat = z.strictObject({
  type: z.literal("heartbeat"),
  gpus: z.array(GpuStats).max(MAX_GPUS_PER_NODE),
  loaded_models: z.array(NodeModelId).max(MAX_MODELS_PER_NODE),
  /** The full served list; the coordinator replaces its record with it (models installed or removed since). */
  models: z.array(ServedModel).max(MAX_MODELS_PER_NODE).optional(),
  active_jobs: z.number().int().min(0).max(MAX_NODE_CONCURRENCY),
  max_concurrency: z.number().int().min(1).max(MAX_NODE_CONCURRENCY),
  draining: z.boolean().default(false),
});
export type NodeHeartbeat = z.infer<typeof NodeHeartbeat>;

export interface HeartbeatAck {
  status: "online";
  server_time: string;
  /** Commands still queued for this node: the fallback when the session push was missed. Absent when none. */
  commands?: NodeCommand[];
}

export interface NodeStatusView {
  status: "online" | "offline";
  /** When the coordinator last heard from the node (heartbeat or registration), where it knows. */
  last_seen_at?: string;
}
