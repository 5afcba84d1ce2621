import Fastify, { type FastifyInstance } from "fastify";
import type { CoordinatorContext } from "./context.js";
import { installErrorHandling } from "./http/errors.js";
import { installJsonBody } from "./http/json-body.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { modelRoutes } from "./routes/models.js";
import { nodeRoutes } from "./routes/nodes.js";
import { nodeCommandRoutes } from "./routes/node-commands.js";
import { openaiRoutes } from "./routes/openai.js";

export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** The coordinator's HTTP API as a Fastify instance, without listening (tests drive it with `inject()`). */
export function buildApp(ctx: CoordinatorContext): FastifyInstance {
  // Fastify's own per-request logging stays off (it costs more than the relay itself); routes log through ctx.logger.
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    trustProxy: false,
    forceCloseConnections: true,
  });
  installJsonBody(app);
  installErrorHandling(app, ctx.logger);
  healthRoutes(app, ctx);
  nodeRoutes(app, ctx);
  nodeCommandRoutes(app, ctx);
  jobRoutes(app, ctx);
  modelRoutes(app, ctx);
  openaiRoutes(app, ctx);
  return app;
}
