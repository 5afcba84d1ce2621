import { type ChatMessage, type NeededFeature, type Sampling, TesseraError, featuresNeeded, featuresOf, unsupportedFeatureMessage } from "@tessera/protocol";
import type { NodeRegistry } from "../registry.js";
import { resolveModel } from "../scheduler/index.js";
import type { JobManager } from "./job-manager.js";
import type { LiveJob } from "./live-job.js";

/** What taking a job in needs: the model names clients may use, the nodes known and online, and the job machinery. */
export interface JobIntake {
  /** Names clients may use for a model (`--alias`). */
  modelAliases: Readonly<Record<string, string>>;
  registry: Pick<NodeRegistry, "get" | "knownModels" | "onlineModels" | "servesOnline">;
  jobs: Pick<JobManager, "submit">;
}

/** What a client asking for a model whose nodes are all away is told to wait before trying again. */
const NO_NODE_RETRY_AFTER_S = 10;

/**
 * The one way a job enters the network, shared by the native and the OpenAI routes: resolve the model name
 * (aliases), answer `model_not_found` at once for a model no node has ever served (listing the models online) and
 * `no_capacity` at once for one no online node serves (the queue is for busy nodes, not absent ones), check a pinned
 * node, submit.
 */
export async function submitJob(
  intake: JobIntake,
  req: { ownerId: string; model: string; messages: ChatMessage[]; sampling: Sampling; nodeId?: string; rawPrompt?: boolean },
): Promise<LiveJob> {
  const resolved = resolveModel(req.model, intake.modelAliases, intake.registry.knownModels(), () => intake.registry.onlineModels().keys());
  if (!resolved.ok) throw new TesseraError("model_not_found", resolved.message, { param: "model" });
  const model = resolved.model;
  if (req.nodeId === undefined && !intake.registry.servesOnline(model)) {
    throw new TesseraError("no_capacity", `no node serving model "${model}" is online right now; it was served before and may be back soon`, {
      retryAfterSeconds: NO_NODE_RETRY_AFTER_S,
      param: "model",
    });
  }
  if (req.nodeId !== undefined && !intake.registry.get(req.nodeId)) {
    throw new TesseraError("bad_request", `node_id ${req.nodeId} is not a registered node`);
  }
  const missing = missingFeature(intake.registry, model, featuresNeeded(req.sampling, { rawPrompt: req.rawPrompt === true }), req.nodeId);
  if (missing) throw new TesseraError("unsupported_parameter", unsupportedFeatureMessage(model, missing), { param: missing.param });
  return intake.jobs.submit({ ...req, model });
}

/**
 * When no online node serving the model (or the pinned node) offers everything the request needs: the first need
 * the most capable of them lacks, so the client hears at once which parameter cannot be honoured rather than
 * waiting for a node that will never come.
 */
function missingFeature(registry: JobIntake["registry"], model: string, needed: readonly NeededFeature[], nodeId: string | undefined): NeededFeature | undefined {
  const nodes = nodeId !== undefined ? [registry.get(nodeId)!] : (registry.onlineModels().get(model) ?? []);
  const offers = nodes.map((node) => featuresOf(node.models.find((m) => m.id === model) ?? {}));
  if (offers.length === 0) return undefined; // a pinned node that does not serve the model: routing says so
  let best: NeededFeature[] | undefined;
  for (const offered of offers) {
    const lacking = needed.filter((n) => !offered.has(n.feature));
    if (lacking.length === 0) return undefined;
    if (!best || lacking.length < best.length) best = lacking;
  }
  return best?.[0];
}
