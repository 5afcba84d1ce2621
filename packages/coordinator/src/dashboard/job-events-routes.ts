import type { FastifyInstance } from "fastify";
import { type JobList, TesseraError } from "@tessera/protocol";
import { openSse } from "../http/sse-response.js";
import type { DashboardDeps } from "./deps.js";
import { MAX_EVENT_STREAMS } from "./network-routes.js";
import type { SessionGate } from "./session-gate.js";

/** How often an open stream looks at its owner's jobs (one indexed query: jobs by owner, newest first). */
export const JOBS_CHECK_MS = 1_000;
/** The newest jobs the Jobs page lists. */
export const JOBS_LISTED = 50;

/**
 * `GET /dashboard/api/jobs/events`: the Jobs page's list, live. A `jobs` event (`{jobs}`, as `GET /api/v1/jobs`
 * answers) when the stream opens and again each time the list changes (a job submitted, accepted, finished, failed),
 * so the page never polls. The owner is the session's key, or on an open network without one, the caller's address
 * (as the public API decides). The stream ends when the session does (signed out, its key revoked, expired). It is
 * not counted against the key's rate limit: it is one request, and streams are capped together.
 */
export function jobEventRoutes(app: FastifyInstance, deps: DashboardDeps, gate: SessionGate): void {
  let open = 0;
  app.get("/dashboard/api/jobs/events", async (request, reply) => {
    const session = gate.sessionOf(request);
    let ownerId: string;
    if (session?.key) ownerId = `key:${session.key.id}`;
    else if (deps.open) ownerId = `addr:${request.ip}`;
    else throw new TesseraError("unauthorized", "sign in with an API key to see your jobs");
    if (open >= MAX_EVENT_STREAMS) {
      throw new TesseraError("no_capacity", `more than ${MAX_EVENT_STREAMS} job event streams are open; retry later`, { retryAfterSeconds: 10 });
    }
    const first = await deps.jobsOf(ownerId, JOBS_LISTED);
    open++;
    const sse = openSse(reply);
    let last = "";
    let stopped = false;
    const send = (jobs: JobList["jobs"]) => {
      const data = JSON.stringify({ jobs } satisfies JobList);
      if (data === last) return;
      last = data;
      sse.write(`event: jobs\ndata: ${data}\n\n`);
    };
    const stop = () => {
      if (stopped) return;
      stopped = true;
      open--;
      clearInterval(timer);
    };
    const tick = async () => {
      if (stopped) return;
      if (session && gate.sessionOf(request)?.id !== session.id) {
        stop();
        sse.end();
        return;
      }
      try {
        send(await deps.jobsOf(ownerId, JOBS_LISTED));
      } catch (err) {
        deps.logger.error({ err }, "dashboard job stream: listing jobs failed");
      }
    };
    const timer = setInterval(() => void tick(), JOBS_CHECK_MS);
    sse.onClientGone(stop);
    send(first);
    return reply;
  });
}
