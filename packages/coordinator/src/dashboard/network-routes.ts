import type { FastifyInstance } from "fastify";
import { type DashboardNetwork, type DashboardNodes, TesseraError } from "@tessera/protocol";
import { openSse } from "../http/sse-response.js";
import type { DashboardDeps } from "./deps.js";
import { type NetworkHistory, SAMPLE_INTERVAL_MS } from "./network-history.js";

/** Event streams open at once; past it a new one is refused, so watchers cannot make the coordinator sample for ever more. */
export const MAX_EVENT_STREAMS = 256;

function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Public, like `GET /api/v1/nodes/:id`: what the network looks like (nodes, models, load) names no client and no
 * prompt. `GET /dashboard/api/events` is the same as a live stream: a `network` and a `nodes` event every
 * `SAMPLE_INTERVAL_MS`.
 */
export function networkRoutes(app: FastifyInstance, deps: DashboardDeps, history: NetworkHistory): void {
  app.get("/dashboard/api/network", async (): Promise<DashboardNetwork> => history.sample());

  app.get("/dashboard/api/nodes", async (): Promise<DashboardNodes> => ({ nodes: deps.network.nodes(deps.clock.now()) }));

  let open = 0;
  app.get("/dashboard/api/events", async (_request, reply) => {
    if (open >= MAX_EVENT_STREAMS) {
      throw new TesseraError("no_capacity", `more than ${MAX_EVENT_STREAMS} dashboard event streams are open; retry later`, { retryAfterSeconds: 10 });
    }
    open++;
    const sse = openSse(reply);
    let stopped = false;
    const tick = async () => {
      try {
        const network = await history.sample();
        sse.write(sseEvent("network", network.now));
        sse.write(sseEvent("nodes", { nodes: deps.network.nodes(deps.clock.now()) } satisfies DashboardNodes));
      } catch (err) {
        deps.logger.error({ err }, "dashboard event stream: sampling failed");
      }
    };
    const timer = setInterval(() => void tick(), SAMPLE_INTERVAL_MS);
    sse.onClientGone(() => {
      if (stopped) return;
      stopped = true;
      open--;
      clearInterval(timer);
    });
    await tick();
    return reply;
  });
}
