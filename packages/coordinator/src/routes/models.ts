import type { FastifyInstance } from "fastify";
import type { ModelsResponse } from "@tessera/protocol";
import type { SpeedMetrics } from "../jobs/speed-metrics.js";
import type { PriceTable } from "../payments/prices.js";
import type { NodeRegistry } from "../registry.js";
import type { ShardedModelSummary } from "../sharding/index.js";

export interface ModelRouteDeps {
  registry: Pick<NodeRegistry, "onlineModels" | "modelSizeBytes">;
  speed: Pick<SpeedMetrics, "get">;
  prices: Pick<PriceTable, "priceOf">;
  /** Sharded models by their pipeline's node id (the registry lists a pipeline as a node serving the model). */
  shardedModels(): ReadonlyMap<string, ShardedModelSummary>;
}

/** Models served by online nodes, with the mean of their measured speeds and their price. */
export function modelRoutes(app: FastifyInstance, deps: ModelRouteDeps): void {
  app.get("/api/v1/models", { config: { auth: "client" } }, async (): Promise<ModelsResponse> => {
    const sharded = deps.shardedModels();
    const models = [...deps.registry.onlineModels()].map(([id, nodes]) => {
      const speeds = nodes
        .map((n) => deps.speed.get(n.id, id)?.tokensPerSecond)
        .filter((v): v is number => v !== undefined && v > 0);
      const avg = speeds.length ? speeds.reduce((a, b) => a + b, 0) / speeds.length : null;
      const price = deps.prices.priceOf(id, deps.registry.modelSizeBytes(id));
      const pipeline = nodes.map((n) => sharded.get(n.id)).find((s) => s !== undefined && s.model === id);
      return {
        id,
        nodes: nodes.length,
        avg_tokens_per_second: avg === null ? null : Math.round(avg * 10) / 10,
        price: { currency: "USDC" as const, unit: "micro_per_1k_tokens" as const, input: price.input_per_1k, output: price.output_per_1k },
        ...(pipeline ? { sharded: { stages: pipeline.stages, layers: pipeline.layers, nodes: pipeline.nodes, ready: pipeline.ready } } : {}),
      };
    });
    models.sort((a, b) => a.id.localeCompare(b.id));
    return { models };
  });
}
