import Fastify, { type FastifyInstance } from "fastify";
import type { CoordinatorContext } from "./context.js";
import { frameworkErrorHandler, installErrorHandling } from "./http/errors.js";
import { installJsonBody } from "./http/json-body.js";
import { installUnreadBodyClose } from "./http/unread-body.js";
import { CLIENT_BODY_LIMIT, installRequestGuard } from "./http/request-guard.js";
import { clientAuthDeps } from "./http/client-auth.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { modelRoutes } from "./routes/models.js";
import { nodeRoutes } from "./routes/nodes.js";
import { nodeViewRoutes } from "./routes/node-view.js";
import { nodeCommandRoutes } from "./routes/node-commands.js";
import { openaiRoutes } from "./routes/openai.js";
import { openaiCompletionRoutes } from "./routes/openai-completions.js";
import { openaiEmbeddingRoutes } from "./routes/openai-embeddings.js";
import { receiptRoutes } from "./routes/receipts.js";
import { payoutRoutes } from "./routes/payouts.js";
import { billingRoutes } from "./routes/billing.js";
import { dashboardRoutes } from "./dashboard/index.js";

/** The largest body any route takes (chat requests); node and operator routes take far less (request-guard.ts). */
export const MAX_BODY_BYTES = CLIENT_BODY_LIMIT;

/** The coordinator's HTTP API as a Fastify instance, without listening (tests drive it with `inject()`). */
export function buildApp(ctx: CoordinatorContext): FastifyInstance {
  // Fastify's own per-request logging stays off (it costs more than the relay itself); routes log through ctx.logger.
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    trustProxy: false,
    forceCloseConnections: true,
    frameworkErrors: frameworkErrorHandler,
  });
  installJsonBody(app);
  installUnreadBodyClose(app);
  // Before the routes: it reads each route's `config.auth` and sets its body cap as the route is added.
  installRequestGuard(app, { clock: ctx.clock, client: clientAuthDeps(ctx), node: ctx.nodeAuth, rateLimitPerMinute: ctx.config.rateLimitPerMinute, throttle: ctx.authThrottle });
  installErrorHandling(app, ctx.logger);
  // What every route that takes jobs in needs (jobs/submit-job.ts `JobIntake`).
  const intake = { modelAliases: ctx.config.modelAliases, registry: ctx.registry, jobs: ctx.jobs };
  healthRoutes(app, ctx);
  nodeRoutes(app, ctx);
  nodeViewRoutes(app, ctx);
  nodeCommandRoutes(app, ctx);
  jobRoutes(app, { ...intake, store: ctx.store });
  modelRoutes(app, { ...ctx, shardedModels: () => ctx.sharding.summaries() });
  openaiRoutes(app, { ...intake, clock: ctx.clock });
  openaiCompletionRoutes(app, intake);
  openaiEmbeddingRoutes(app, ctx);
  billingRoutes(app, ctx);
  receiptRoutes(app, ctx);
  payoutRoutes(app, ctx);
  dashboardRoutes(app, ctx);
  return app;
}
