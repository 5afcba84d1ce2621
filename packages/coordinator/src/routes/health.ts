import type { FastifyInstance } from "fastify";
import type { CoordinatorContext } from "../context.js";

export function healthRoutes(app: FastifyInstance, ctx: CoordinatorContext): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  /** Prometheus exposition: node, job, routing and process metrics. Public, like /healthz; it holds no prompts. */
  app.get("/metrics", async (_request, reply) => {
    reply.type(ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
