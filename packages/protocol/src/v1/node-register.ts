import { z } from "zod";
import { sha256Hex } from "../hex.js";
import { NodeId } from "./sampling.js";
import { KeyRotation, NodeDelegation } from "./delegation.js";
import { ModelFeatures } from "./model-features.js";
import {
  MAX_GPUS_PER_NODE,
  MAX_MEMORY_MB,
  MAX_MODELS_PER_NODE,
  MAX_NODE_CONCURRENCY,
  MAX_RAM_MB,
  NodeByteCount,
  NodeModelId,
  nodeText,
  nodeToken,
} from "./node-fields.js";

/** `tsjt_` + 24 random bytes in base64url: made by `tessera coordinator join-tokens create`, stored only as a hash. */
export const JOIN_TOKEN_PREFIX = "tsjt_";
export const JOIN_TOKEN_PATTERN = /^tsjt_[A-Za-z0-9_-]{32}$/;

/** What a coordinator stores of a join token, and looks it up by. */
export function hashJoinToken(token: string): string {
  return sha256Hex(token);
}

/** Coarse capability only: no hostname, no exact CPU model, nothing that identifies the machine. */
export const GpuSummary = z.object({
  vendor: z.enum(["nvidia", "amd", "apple", "other"]),
  name: nodeText(128),
  vram_mb: z.number().int().min(0).max(MAX_MEMORY_MB),
});
export type GpuSummary = z.infer<typeof GpuSummary>;

export const Hardware = z.object({
  cpu_cores: z.number().int().min(1).max(4096),
  ram_mb: z.number().int().min(0).max(MAX_RAM_MB),
  gpus: z.array(GpuSummary).max(MAX_GPUS_PER_NODE),
  tier: z.enum([">=48gb", ">=24gb", ">=12gb", ">=8gb", "cpu"]).optional(),
});
export type Hardware = z.infer<typeof Hardware>;

export const ServedModel = z.object({
  id: NodeModelId,
  backend: nodeToken(32),
  /** Bytes on disk, where the backend knows it. */
  size_bytes: NodeByteCount.optional(),
  /** The backend can score given tokens by teacher forcing (check.ts): the node may serve as a reference for checks. */
  scoring: z.boolean().optional(),
  /**
   * The backend can also score an answer under the grammar it was generated under (`check.score` `constraint`: JSON
   * mode, tools). A reference without it would drop the constraint and fail honest constrained answers, so the
   * coordinator sends those only to references that say so.
   */
  constrained_scoring: z.boolean().optional(),
  /**
   * SHA-256 of the model file, where the node can name it (embedded and stage nodes, Ollama nodes from the GGUF blob);
   * absent where the backend cannot (vLLM, SGLang, llama-server). Its result commitments must name the same; spot-check
   * references and failover continuations are chosen to hold the same file (coordinator trust/ and scheduler/ design).
   */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex characters").optional(),
  /** What the node can do with this model (model-features.ts); absent: chat answers only. */
  features: ModelFeatures.optional(),
});
export type ServedModel = z.infer<typeof ServedModel>;

/**
 * `POST /api/v1/nodes/register` body. The signer's key must equal `public_key`. Every field is bounded as
 * node-fields.ts says: at most 64 models, ids in a conservative charset, names printable without markup.
 */
export const NodeRegister = z.strictObject({
  type: z.literal("register"),
  public_key: NodeId,
  version: nodeToken(64),
  hardware: Hardware,
  models: z.array(ServedModel).max(MAX_MODELS_PER_NODE),
  max_concurrency: z.number().int().min(1).max(MAX_NODE_CONCURRENCY),
  /**
   * Node commands this daemon has taken and not finished. A command the coordinator holds as `running` for the node
   * and that is not listed was cut off (the daemon restarted): it is marked failed with `node_disconnected`.
   */
  running_commands: z.array(nodeToken(128)).max(64).optional(),
  /** The operator key's vouching for this node key (delegation.ts); without it the node is its own operator. */
  delegation: NodeDelegation.optional(),
  /** A join token from the coordinator's owner: admits a new operator where admission is `token` (or `approval`). */
  join_token: z.string().regex(JOIN_TOKEN_PATTERN, "a join token looks like tsjt_ followed by 32 base64url characters").optional(),
  /** This key succeeds another one: the node's standing carries over (delegation.ts). */
  rotation: KeyRotation.optional(),
});
export type NodeRegister = z.infer<typeof NodeRegister>;

export interface NodeRegistered {
  node_id: string;
  /** The operator the node counts under: the delegation's operator key, or the node's own key. */
  operator: string;
  status: "online" | "offline";
  heartbeat_interval_s: number;
}
