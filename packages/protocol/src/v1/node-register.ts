import { z } from "zod";
import { ModelName, NodeId } from "./sampling.js";

/** Coarse capability only: no hostname, no exact CPU model, nothing that identifies the machine. */
export const GpuSummary = z.object({
  vendor: z.enum(["nvidia", "amd", "apple", "other"]),
  name: z.string().max(128),
  vram_mb: z.number().int().min(0),
});
export type GpuSummary = z.infer<typeof GpuSummary>;

export const Hardware = z.object({
  cpu_cores: z.number().int().min(1).max(4096),
  ram_mb: z.number().int().min(0),
  gpus: z.array(GpuSummary).max(64),
  tier: z.enum([">=48gb", ">=24gb", ">=12gb", ">=8gb", "cpu"]).optional(),
});
export type Hardware = z.infer<typeof Hardware>;

export const ServedModel = z.object({
  id: ModelName,
  backend: z.string().max(64),
  /** Bytes on disk, where the backend knows it. */
  size_bytes: z.number().int().min(0).optional(),
});
export type ServedModel = z.infer<typeof ServedModel>;

/** `POST /api/v1/nodes/register` body. The signer's key must equal `public_key`. */
export const NodeRegister = z.strictObject({
  type: z.literal("register"),
  public_key: NodeId,
  version: z.string().max(64),
  hardware: Hardware,
  models: z.array(ServedModel).max(256),
  max_concurrency: z.number().int().min(1).max(1024),
  /**
   * Node commands this daemon has taken and not finished. A command the coordinator holds as `running` for the node
   * and that is not listed was cut off (the daemon restarted): it is marked failed with `node_disconnected`.
   */
  running_commands: z.array(z.string().min(1).max(128)).max(64).optional(),
});
export type NodeRegister = z.infer<typeof NodeRegister>;

export interface NodeRegistered {
  node_id: string;
  status: "online" | "offline";
  heartbeat_interval_s: number;
}
