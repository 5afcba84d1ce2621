import type { FastifyInstance } from "fastify";
import {
  JobCreateRequest,
  JobListQuery,
  type JobAccepted,
  type JobList,
  type JobView,
  SSE_DONE,
  TesseraError,
  nativeErrorEvent,
  nativeTextEvent,
  normalizeStop,
} from "@tessera/protocol";
import { callerOf } from "../http/request-guard.js";
import { openSse, type SseResponse } from "../http/sse-response.js";
import type { JobManager } from "../jobs/job-manager.js";
import type { LiveJob } from "../jobs/live-job.js";
import { type JobIntake, submitJob } from "../jobs/submit-job.js";
import { viewOfJobRecord, viewOfLiveJob } from "../jobs/job-view.js";
import type { Store } from "../store/types.js";

export interface JobRouteDeps extends JobIntake {
  jobs: Pick<JobManager, "submit" | "get" | "subscribe" | "cancel">;
  /** Jobs no longer held live: their stored record. */
  store: Pick<Store, "getJob" | "listJobs">;
}

/** The native jobs API: submit, poll, stream (also late), list. */
export function jobRoutes(app: FastifyInstance, deps: JobRouteDeps): void {
  app.post("/api/v1/jobs", { config: { auth: "client" } }, async (request, reply) => {
    const caller = callerOf(request);
    const body = JobCreateRequest.parse(request.body ?? {});
    const job = await submitJob(deps, {
      ownerId: caller.ownerId,
      model: body.model,
      messages: body.messages,
      sampling: {
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        ...(body.seed !== undefined ? { seed: body.seed } : {}),
        ...(normalizeStop(body.stop) ? { stop: normalizeStop(body.stop) } : {}),
        ...(body.response_format ? { response_format: body.response_format } : {}),
      },
      nodeId: body.node_id,
    });
    if (!body.stream) {
      const accepted: JobAccepted = { id: job.id, status: "pending", model: job.model, created_at: new Date(job.createdAt).toISOString() };
      return reply.code(202).send(accepted);
    }
    const sse = openSse(reply, { "x-tessera-job-id": job.id });
    sse.onClientGone(() => deps.jobs.cancel(job.id, "client disconnected"));
    relayNative(deps.jobs, job, sse);
    return reply;
  });

  app.get<{ Params: { id: string } }>("/api/v1/jobs/:id", { config: { auth: "client" } }, async (request): Promise<JobView> => {
    const caller = callerOf(request);
    const live = deps.jobs.get(request.params.id);
    if (live && live.ownerId === caller.ownerId) return viewOfLiveJob(live);
    const record = await deps.store.getJob(request.params.id);
    if (!record || record.ownerId !== caller.ownerId) throw new TesseraError("not_found", `no job ${request.params.id}`);
    return viewOfJobRecord(record);
  });

  app.get<{ Params: { id: string } }>("/api/v1/jobs/:id/stream", { config: { auth: "client" } }, async (request, reply) => {
    const caller = callerOf(request);
    const live = deps.jobs.get(request.params.id);
    if (live && live.ownerId === caller.ownerId) {
      relayNative(deps.jobs, live, openSse(reply));
      return reply;
    }
    const record = await deps.store.getJob(request.params.id);
    if (!record || record.ownerId !== caller.ownerId) throw new TesseraError("not_found", `no job ${request.params.id}`);
    const sse = openSse(reply);
    if (record.status === "completed") {
      if (record.content) sse.write(nativeTextEvent(record.content));
      sse.write(SSE_DONE);
    } else {
      // A job in the store but not held here was lost with a previous coordinator process.
      sse.write(nativeErrorEvent(record.error ?? "node_disconnected", record.errorMessage ?? "the job is no longer running"));
    }
    sse.end();
    return reply;
  });

  app.get("/api/v1/jobs", { config: { auth: "client" } }, async (request): Promise<JobList> => {
    const caller = callerOf(request);
    const query = JobListQuery.parse(request.query);
    const records = await deps.store.listJobs(caller.ownerId, {
      limit: query.limit,
      ...(query.status ? { status: query.status } : {}),
      ...(query.since ? { since: new Date(query.since) } : {}),
    });
    return {
      jobs: records.map((record) => {
        const live = deps.jobs.get(record.id);
        return live ? viewOfLiveJob(live) : viewOfJobRecord(record);
      }),
    };
  });
}

/** Native SSE: what was already generated first, then the live rest; `[DONE]` or one error event at the end. */
function relayNative(jobs: JobRouteDeps["jobs"], job: LiveJob, sse: SseResponse): void {
  if (job.visibleText) sse.write(nativeTextEvent(job.visibleText));
  if (job.finished) return finishNative(job, sse);
  const unsubscribe = jobs.subscribe(job, (event) => {
    if (event.type === "text") return sse.write(nativeTextEvent(event.text));
    unsubscribe();
    finishNative(job, sse);
  });
  sse.onClientGone(unsubscribe);
}

function finishNative(job: LiveJob, sse: SseResponse): void {
  if (job.status === "completed") sse.write(SSE_DONE);
  else if (job.error) sse.write(nativeErrorEvent(job.error.code, job.error.message));
  sse.end();
}
