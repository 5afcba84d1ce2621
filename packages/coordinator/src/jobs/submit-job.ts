import { type ChatMessage, type Sampling, TesseraError } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";
import { resolveModel } from "../scheduler/index.js";
import type { LiveJob } from "./live-job.js";

/** What a client asking for a model whose nodes are all away is told to wait before trying again. */
const NO_NODE_RETRY_AFTER_S = 10;

/**
 * The one way a job enters the network, shared by the native and the OpenAI routes: resolve the model name
 * (aliases), answer `model_not_found` at once for a model no node has ever served (listing the models online) and
 * `no_capacity` at once for one no online node serves (the queue is for busy nodes, not absent ones), check a pinned
 * node, submit.
 */
export async function submitJob(
  ctx: CoordinatorContext,
  req: { ownerId: string; model: string; messages: ChatMessage[]; sampling: Sampling; nodeId?: string; rawPrompt?: boolean },
): Promise<LiveJob> {
  const resolved = resolveModel(req.model, ctx.config.modelAliases, ctx.registry.knownModels(), () => ctx.registry.onlineModels().keys());
  if (!resolved.ok) throw new TesseraError("model_not_found", resolved.message, { param: "model" });
  const model = resolved.model;
  if (req.nodeId === undefined && !ctx.registry.servesOnline(model)) {
    throw new TesseraError("no_capacity", `no node serving model "${model}" is online right now; it was served before and may be back soon`, {
      retryAfterSeconds: NO_NODE_RETRY_AFTER_S,
      param: "model",
    });
  }
  if (req.nodeId !== undefined && !ctx.registry.get(req.nodeId)) {
    throw new TesseraError("bad_request", `node_id ${req.nodeId} is not a registered node`);
  }
  return ctx.jobs.submit({ ...req, model });
}
