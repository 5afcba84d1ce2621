import type { FastifyInstance } from "fastify";
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  ChatCompletionRequest,
  OPENAI_DEFAULT_TEMPERATURE,
  type OpenAIModel,
  type Sampling,
  type OpenAIFinishReason,
  type OpenAIModelList,
  type ToolCall,
  type ToolCallDelta,
  type TokenLogprob,
  SSE_DONE,
  TesseraError,
  chatCompletionMaxTokens,
  normalizeResponseFormat,
  normalizeStop,
  openAIErrorBody,
  openAITokenLogprobs,
  unsupportedChatField,
  sseData,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import { callerOf } from "../http/request-guard.js";
import { openSse } from "../http/sse-response.js";
import type { JobManager } from "../jobs/job-manager.js";
import type { LiveJob } from "../jobs/live-job.js";
import { type JobIntake, submitJob } from "../jobs/submit-job.js";
import type { NodeRegistry } from "../registry.js";
import { firstFailureOrAllDone, relayChoices, submitEach, usageOf } from "./openai-choices.js";

export interface OpenAIChatRouteDeps extends JobIntake {
  jobs: Pick<JobManager, "submit" | "subscribe" | "cancel">;
  /** The models online, and when each was first served (`created`). */
  registry: JobIntake["registry"] & Pick<NodeRegistry, "firstServed">;
  clock: Clock;
}

/**
 * The OpenAI-compatible edge: a translation onto the native job, not a second pipeline. Note the official JS client
 * sends `Accept: application/json` even when streaming, so the body's `stream` flag alone decides.
 */
export function openaiRoutes(app: FastifyInstance, deps: OpenAIChatRouteDeps): void {
  app.post("/v1/chat/completions", { config: { auth: "client" } }, async (request, reply) => {
    const caller = callerOf(request);
    const unsupported = unsupportedChatField(request.body);
    if (unsupported) throw new TesseraError(unsupported.code, unsupported.message, { param: unsupported.param });
    const body = ChatCompletionRequest.parse(request.body ?? {});
    const jobs = await submitChoices(deps, caller.ownerId, body);
    const cancelAll = () => {
      for (const job of jobs) if (!job.finished) deps.jobs.cancel(job.id, "client disconnected");
    };
    const id = `chatcmpl-${jobs[0]!.id}`;
    const created = Math.floor(jobs[0]!.createdAt / 1000);
    const model = body.model;

    if (!body.stream) {
      reply.raw.once("close", () => {
        if (!reply.raw.writableEnded) cancelAll();
      });
      const failed = await firstFailureOrAllDone(deps.jobs, jobs);
      if (failed) {
        cancelAll();
        throw new TesseraError(failed.error!.code, failed.error!.message);
      }
      const completion: ChatCompletion = {
        id,
        object: "chat.completion",
        created,
        model,
        choices: jobs.map((job, index) => ({
          index,
          message: job.toolCalls ? { role: "assistant", content: job.text || null, tool_calls: job.toolCalls } : { role: "assistant", content: job.text },
          finish_reason: finishReasonOf(job),
          logprobs: body.logprobs ? { content: openAITokenLogprobs(job.sentTokenLogprobs), refusal: null } : null,
        })),
        usage: usageOf(jobs),
      };
      return completion;
    }

    const sse = openSse(reply);
    sse.onClientGone(cancelAll);
    const chunk = (
      index: number,
      delta: ChatCompletionChunk["choices"][0]["delta"],
      finish: ChatCompletionChunk["choices"][0]["finish_reason"],
      tokens?: readonly TokenLogprob[],
    ): ChatCompletionChunk => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index, delta, finish_reason: finish, ...(body.logprobs ? { logprobs: tokens ? { content: openAITokenLogprobs(tokens), refusal: null } : null } : {}) }],
    });
    for (const index of jobs.keys()) sse.write(sseData(chunk(index, { role: "assistant", content: "" }, null)));
    // Each choice's text, then its calls and finish chunk; the usage and [DONE] once every choice has ended; a failure
    // ends them all (openai-choices.ts, shared with /v1/completions).
    const stopRelay = relayChoices(
      deps.jobs,
      jobs,
      {
        text: (index, _job, text, logprobs) => sse.write(sseData(chunk(index, { content: text }, null, logprobs))),
        finished: (index, job) => {
          if (job.toolCalls) for (const delta of toolCallDeltas(job.toolCalls)) sse.write(sseData(chunk(index, { tool_calls: [delta] }, null)));
          sse.write(sseData(chunk(index, {}, finishReasonOf(job))));
        },
        allDone: () => {
          if (body.stream_options?.include_usage) {
            sse.write(sseData({ id, object: "chat.completion.chunk", created, model, choices: [], usage: usageOf(jobs) } satisfies ChatCompletionChunk));
          }
          sse.write(SSE_DONE);
        },
        failed: (job) => {
          if (job.error) sse.write(sseData(openAIErrorBody(job.error.code, job.error.message)));
        },
      },
      () => sse.end(),
    );
    sse.onClientGone(stopRelay);
    return reply;
  });

  app.get("/v1/models", { config: { auth: "client" } }, async (): Promise<OpenAIModelList> => {
    return { object: "list", data: onlineModelObjects(deps) };
  });

  app.get<{ Params: { id: string } }>("/v1/models/:id", { config: { auth: "client" } }, async (request): Promise<OpenAIModel> => {
    // Model ids may hold "/" (meta-llama/Llama-3.1-8B-Instruct): the client sends it percent-encoded, Fastify decodes it.
    const model = onlineModelObjects(deps).find((m) => m.id === request.params.id);
    if (model) return model;
    const online = onlineModelObjects(deps).map((m) => m.id);
    throw new TesseraError(
      "model_not_found",
      `model "${request.params.id}" is not served right now; ${online.length ? `available models: ${online.join(", ")}` : "no models are available right now"}`,
      { param: "model" },
    );
  });
}

/**
 * The models served right now, as OpenAI lists them: each with `created`, when a node first announced it to this
 * coordinator; and each alias whose target is served, with its target's `created`.
 */
function onlineModelObjects(deps: OpenAIChatRouteDeps): OpenAIModel[] {
  const online = new Set(deps.registry.onlineModels().keys());
  const object = (id: string, target: string): OpenAIModel => ({
    id,
    object: "model",
    created: Math.floor((deps.registry.firstServed(target) ?? deps.clock.now()) / 1000),
    owned_by: "tessera",
  });
  const models = [...online].map((id) => object(id, id));
  for (const [alias, target] of Object.entries(deps.modelAliases)) {
    if (online.has(target) && !online.has(alias)) models.push(object(alias, target));
  }
  return models.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * What a job carries besides sampling proper: the JSON format and the tools. `text` and an empty tool list ask for
 * nothing and are dropped; `tool_choice` and `parallel_tool_calls` travel only with tools to apply to.
 */
function constraintsOf(body: ChatCompletionRequest): Pick<Sampling, "response_format" | "tools" | "tool_choice" | "parallel_tool_calls"> {
  const out: Pick<Sampling, "response_format" | "tools" | "tool_choice" | "parallel_tool_calls"> = {};
  const format = normalizeResponseFormat(body.response_format);
  if (format) out.response_format = format;
  if (body.tools && body.tools.length > 0) {
    out.tools = body.tools;
    if (body.tool_choice != null) out.tool_choice = body.tool_choice;
    if (body.parallel_tool_calls != null) out.parallel_tool_calls = body.parallel_tool_calls;
  }
  return out;
}

/** As OpenAI: `tool_calls` when the answer ended with calls, but `length` when max_tokens cut it (calls may be partial). */
function finishReasonOf(job: LiveJob): OpenAIFinishReason {
  if (job.finishReason === "length") return "length";
  return job.toolCalls ? "tool_calls" : "stop";
}

/** A finished call as OpenAI streams one: a delta with id, type and name, then one with the arguments. */
function toolCallDeltas(calls: ToolCall[]): ToolCallDelta[] {
  return calls.flatMap((call, index): ToolCallDelta[] => [
    { index, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } },
    { index, function: { arguments: call.function.arguments } },
  ]);
}

/**
 * One job per choice (`n`, default 1). With a client's seed, choice i samples with seed + i, so the choices differ
 * and the request stays reproducible; without one each job gets its own coordinator seed. A choice refused at
 * submission (no such model, a full queue) cancels those already submitted.
 */
function submitChoices(deps: OpenAIChatRouteDeps, ownerId: string, body: ChatCompletionRequest): Promise<LiveJob[]> {
  return submitEach(deps.jobs, body.n ?? 1, (i) =>
    submitJob(deps, {
      ownerId,
      model: body.model,
      messages: body.messages,
      sampling: {
        max_tokens: chatCompletionMaxTokens(body),
        temperature: body.temperature ?? OPENAI_DEFAULT_TEMPERATURE,
        top_p: body.top_p ?? 1,
        ...(body.seed != null ? { seed: (body.seed + i) % 2 ** 32 } : {}),
        ...(normalizeStop(body.stop) ? { stop: normalizeStop(body.stop) } : {}),
        ...(body.logprobs ? { logprobs: true, top_logprobs: body.top_logprobs ?? 0 } : {}),
        ...constraintsOf(body),
      },
    }),
  );
}
