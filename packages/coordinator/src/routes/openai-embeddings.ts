import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import {
  type EmbeddingObject,
  EmbeddingsRequest,
  type EmbeddingsResponse,
  TesseraError,
  embeddingTokenBound,
  encodeEmbedding,
  unsupportedEmbeddingField,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { CoordinatorConfig } from "../config.js";
import type { EmbeddingRequests } from "../embeddings/embedding-requests.js";
import type { Logger } from "../logger.js";
import type { JobBilling } from "../payments/job-billing.js";
import type { NodeRegistry } from "../registry.js";
import { callerOf } from "../http/request-guard.js";
import { resolveModel } from "../scheduler/index.js";
import { embeddingRequestId } from "../payments/job-billing.js";

/** What a client asking for a model whose embedding nodes are all away is told to wait before trying again. */
const NO_NODE_RETRY_AFTER_S = 10;

export interface EmbeddingRouteDeps {
  clock: Clock;
  logger: Logger;
  config: Pick<CoordinatorConfig, "modelAliases">;
  registry: Pick<NodeRegistry, "knownModels">;
  embeddings: Pick<EmbeddingRequests, "run" | "servedModels">;
  /** Escrow and settlement of each request; undefined with `--ledger off`. */
  billing: Pick<JobBilling, "openEmbedding" | "refund" | "settle"> | undefined;
  /** This replica's id: request ids name it (payments/job-billing.ts `embeddingRequestId`). */
  replicaId: string;
}

/**
 * `POST /v1/embeddings`, OpenAI's shape: routed to a node whose model announces `embeddings` (embeddings/
 * embedding-requests.ts). Errors leave in OpenAI's shape like every `/v1` route. Billed as a job with no output
 * (payments/design.md "Embeddings"): the input's greatest cost held in escrow first (402 when short), one receipt for
 * the node that answered, at the model's input price for the tokens it evaluated, off the client's path.
 */
export function openaiEmbeddingRoutes(app: FastifyInstance, deps: EmbeddingRouteDeps): void {
  app.post("/v1/embeddings", { config: { auth: "client" } }, async (request, reply): Promise<EmbeddingsResponse> => {
    const caller = callerOf(request);
    const unsupported = unsupportedEmbeddingField(request.body);
    if (unsupported) throw new TesseraError(unsupported.code, unsupported.message, { param: unsupported.param });
    const body = EmbeddingsRequest.parse(request.body ?? {});
    const model = resolveEmbeddingModel(deps, body.model);

    const abort = new AbortController();
    reply.raw.once("close", () => {
      if (!reply.raw.writableEnded) abort.abort();
    });
    const count = "texts" in body.input ? body.input.texts.length : body.input.tokens.length;
    const started = deps.clock.now();
    const id = embeddingRequestId(deps.replicaId);
    const billing = deps.billing;
    await billing?.openEmbedding({ id, ownerId: caller.ownerId, model, tokenBound: embeddingTokenBound(body.input) });
    let result;
    try {
      result = await deps.embeddings.run(model, body.input, abort.signal, id);
    } catch (err) {
      billing?.refund({ id, ownerId: caller.ownerId }).catch((e: unknown) => deps.logger.error({ err: e, request: id }, "could not refund an embedding request's escrow"));
      throw err;
    }
    // The answer never waits for the accounts (as a job's): one receipt, for the node that answered.
    const completedAt = deps.clock.now();
    const outputSha256 = sha256OfVectors(result.vectors);
    const nodeId = result.nodeId;
    billing
      ?.settle({ id, ownerId: caller.ownerId, model, promptTokens: result.promptTokens, outputSha256, completedAt, segments: [{ nodeId, completionTokens: 0 }] })
      .catch((err: unknown) => deps.logger.error({ err, request: id }, "could not settle an embedding request"));
    deps.logger.info({ model, inputs: count, node: result.nodeId.slice(0, 12), prompt_tokens: result.promptTokens, ms: deps.clock.now() - started }, "embeddings served");
    const base64 = body.encoding_format === "base64";
    const data = result.vectors.map((vector, index): EmbeddingObject => ({ object: "embedding", index, embedding: base64 ? encodeEmbedding(vector) : Array.from(vector) }));
    return { object: "list", data, model: body.model, usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens } };
  });
}

/**
 * The model an embedding request runs on (aliases resolved): `model_not_found` for a name no node has served,
 * `unsupported_parameter` for a model online nodes serve only for chat (the message says which endpoint to use),
 * `no_capacity` for one served before whose embedding nodes are all away.
 */
function resolveEmbeddingModel(deps: EmbeddingRouteDeps, requested: string): string {
  const served = deps.embeddings.servedModels();
  const resolved = resolveModel(requested, deps.config.modelAliases, deps.registry.knownModels(), () => served.embeddings);
  if (!resolved.ok) throw new TesseraError("model_not_found", resolved.message, { param: "model" });
  const model = resolved.model;
  if (served.embeddings.has(model)) return model;
  if (served.other.has(model)) {
    const list = served.embeddings.size > 0 ? `; models that do: ${[...served.embeddings].sort().join(", ")}` : "";
    throw new TesseraError(
      "unsupported_parameter",
      `model "${model}" does not compute embeddings (no online node serving it can); it is a chat model, so use /v1/chat/completions for it${list}`,
      { param: "model" },
    );
  }
  throw new TesseraError("no_capacity", `no node computing embeddings for model "${model}" is online right now; it was served before and may be back soon`, {
    retryAfterSeconds: NO_NODE_RETRY_AFTER_S,
    param: "model",
  });
}

/** What a receipt's `output_sha256` is for embeddings: SHA-256 of the vectors as little-endian float32, in order. */
function sha256OfVectors(vectors: readonly Float32Array[]): string {
  const hash = createHash("sha256");
  for (const v of vectors) {
    const bytes = Buffer.alloc(v.length * 4);
    for (let i = 0; i < v.length; i++) bytes.writeFloatLE(v[i]!, i * 4);
    hash.update(bytes);
  }
  return hash.digest("hex");
}
