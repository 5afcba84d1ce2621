import { type ChatMessage, type Sampling, TesseraError } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";
import { resolveModel } from "../scheduler/index.js";
import type { LiveJob } from "./live-job.js";

/**
 * The one way a job enters the network, shared by the native and the OpenAI routes: resolve the model name
 * (aliases), answer `model_not_found` at once for a model no node has ever served, check a pinned node, submit.
 */
export async function submitJob(
  ctx: CoordinatorContext,
  req: { ownerId: string; model: string; messages: ChatMessage[]; sampling: Sampling; nodeId?: string },
): Promise<LiveJob> {
  const resolved = resolveModel(req.model, ctx.config.modelAliases, ctx.registry.knownModels());
  if (!resolved.ok) throw new TesseraError("model_not_found", resolved.message, { param: "model" });
  const model = resolved.model;
  if (req.nodeId !== undefined && !ctx.registry.get(req.nodeId)) {
    throw new TesseraError("bad_request", `node_id ${req.nodeId} is not a registered node`);
  }
  return ctx.jobs.submit({ ...req, model });
}
