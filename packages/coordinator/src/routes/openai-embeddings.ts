import type { FastifyInstance } from "fastify";
import { type EmbeddingObject, EmbeddingsRequest, type EmbeddingsResponse, TesseraError, encodeEmbedding, unsupportedEmbeddingField } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";
import { callerOf } from "../http/request-guard.js";
import { resolveModel } from "../scheduler/index.js";

/** What a client asking for a model whose embedding nodes are all away is told to wait before trying again. */
const NO_NODE_RETRY_AFTER_S = 10;

/**
 * `POST /v1/embeddings`, OpenAI's shape: routed to a node whose model announces `embeddings` (embeddings/
 * embedding-requests.ts). Errors leave in OpenAI's shape like every `/v1` route. Not billed yet (payments/design.md
 * "Embeddings"): with the ledger on, only models whose price is zero are served, and any other is refused by name.
 */
export function openaiEmbeddingRoutes(app: FastifyInstance, ctx: CoordinatorContext): void {
  app.post("/v1/embeddings", { config: { auth: "client" } }, async (request, reply): Promise<EmbeddingsResponse> => {
    callerOf(request);
    const unsupported = unsupportedEmbeddingField(request.body);
    if (unsupported) throw new TesseraError(unsupported.code, unsupported.message, { param: unsupported.param });
    const body = EmbeddingsRequest.parse(request.body ?? {});
    const model = resolveEmbeddingModel(ctx, body.model);
    refuseUnbilled(ctx, model);

    const abort = new AbortController();
    reply.raw.once("close", () => {
      if (!reply.raw.writableEnded) abort.abort();
    });
    const count = "texts" in body.input ? body.input.texts.length : body.input.tokens.length;
    const started = ctx.clock.now();
    const result = await ctx.embeddings.run(model, body.input, abort.signal);
    ctx.logger.info({ model, inputs: count, node: result.nodeId.slice(0, 12), prompt_tokens: result.promptTokens, ms: ctx.clock.now() - started }, "embeddings served");
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
function resolveEmbeddingModel(ctx: CoordinatorContext, requested: string): string {
  const served = ctx.embeddings.servedModels();
  const resolved = resolveModel(requested, ctx.config.modelAliases, ctx.registry.knownModels(), () => served.embeddings);
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

/** Embeddings are not charged yet, so a model with a price (or a reward) is refused rather than served for free. */
function refuseUnbilled(ctx: CoordinatorContext, model: string): void {
  if (!ctx.config.ledger) return;
  const price = ctx.prices.priceOf(model, ctx.registry.modelSizeBytes(model));
  if (price.input_per_1k === 0 && price.output_per_1k === 0 && price.reward_input_per_1k === 0 && price.reward_output_per_1k === 0) return;
  throw new TesseraError(
    "forbidden",
    `this coordinator does not bill embeddings yet, so it serves them only for free models, and model "${model}" has a price; its owner can make it free in the price table (--prices)`,
    { param: "model" },
  );
}
