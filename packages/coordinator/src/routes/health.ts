import type { FastifyInstance } from "fastify";
import type { CoordinatorMetrics } from "../metrics.js";

export interface HealthRouteDeps {
  metrics: Pick<CoordinatorMetrics, "registry">;
}

export function healthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  /** Prometheus exposition: node, job, routing and process metrics. Public, like /healthz; it holds no prompts. */
  app.get("/metrics", async (_request, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
