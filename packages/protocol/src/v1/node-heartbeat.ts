import { z } from "zod";
import { ModelName } from "./sampling.js";
import { ServedModel } from "./node-register.js";
import type { NodeCommand } from "./node-command.js";

export const GpuStats = z.object({
  name: z.string().max(128),
  memory_total_mb: z.number().min(0),
  memory_used_mb: z.number().min(0),
  utilization_pct: z.number().min(0).max(100),
  temperature_c: z.number().optional(),
  power_w: z.number().optional(),
});
export type GpuStats = z.infer<typeof GpuStats>;

/** `POST /api/v1/nodes/heartbeat` body, every 30 s. */
export const NodeHeartbeat = z.strictObject({
  type: z.literal("heartbeat"),
  gpus: z.array(GpuStats).max(64),
  loaded_models: z.array(ModelName).max(256),
  /** The full served list; the coordinator replaces its record with it (models installed or removed since). */
  models: z.array(ServedModel).max(256).optional(),
  active_jobs: z.number().int().min(0),
  max_concurrency: z.number().int().min(1).max(1024),
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
