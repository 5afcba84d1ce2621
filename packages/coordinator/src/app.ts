import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { CoordinatorContext } from "./context.js";
import { installErrorHandling } from "./http/errors.js";
import { installJsonBody } from "./http/json-body.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { modelRoutes } from "./routes/models.js";
import { nodeRoutes } from "./routes/nodes.js";
import { openaiRoutes } from "./routes/openai.js";

export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** The coordinator's HTTP API as a Fastify instance, without listening (tests drive it with `inject()`). */
export function buildApp(ctx: CoordinatorContext): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: MAX_BODY_BYTES,
    trustProxy: false,
    forceCloseConnections: true,
  });
  installJsonBody(app);
  installErrorHandling(app);
  healthRoutes(app);
  nodeRoutes(app, ctx);
  jobRoutes(app, ctx);
  modelRoutes(app, ctx);
  openaiRoutes(app, ctx);
  return app;
}
