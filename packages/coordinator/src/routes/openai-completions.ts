import type { FastifyInstance } from "fastify";
import {
  type Completion,
  type CompletionChoice,
  type CompletionFinishReason,
  CompletionRequest,
  SSE_DONE,
  TesseraError,
  completionPrompts,
  completionSampling,
  legacyLogprobs,
  normalizeStop,
  openAIErrorBody,
  sseData,
  unsupportedCompletionField,
} from "@tessera/protocol";
import { callerOf } from "../http/request-guard.js";
import { openSse } from "../http/sse-response.js";
import type { JobManager } from "../jobs/job-manager.js";
import type { LiveJob } from "../jobs/live-job.js";
import { type JobIntake, submitJob } from "../jobs/submit-job.js";
import { firstFailureOrAllDone, relayChoices, submitEach, usageOf } from "./openai-choices.js";

export interface OpenAICompletionRouteDeps extends JobIntake {
  jobs: Pick<JobManager, "submit" | "subscribe" | "cancel">;
}

/**
 * `POST /v1/completions`, OpenAI's legacy text completion: each prompt is continued as is, with no chat template, by
 * a raw-prompt job (session.ts `JobAssignment.raw_prompt`), one job per choice. With several prompts, choice `i`
 * answers prompt `floor(i / n)`, as OpenAI orders them. Parameters Tessera would have to ignore (`suffix`, `echo`,
 * `best_of` > 1, `logit_bias`, penalties) are refused by name before the body is parsed. `logprobs` (the legacy
 * integer) answers each choice's tokens in the legacy shape (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`).
 */
export function openaiCompletionRoutes(app: FastifyInstance, deps: OpenAICompletionRouteDeps): void {
  app.post("/v1/completions", { config: { auth: "client" } }, async (request, reply) => {
    const caller = callerOf(request);
    const unsupported = unsupportedCompletionField(request.body);
    if (unsupported) throw new TesseraError(unsupported.code, unsupported.message, { param: unsupported.param });
    const body = CompletionRequest.parse(request.body ?? {});
    const prompts = completionPrompts(body);
    const n = body.n ?? 1;
    const stop = normalizeStop(body.stop);
    const jobs = await submitEach(deps.jobs, prompts.length * n, (i) =>
      submitJob(deps, {
        ownerId: caller.ownerId,
        model: body.model,
        messages: [{ role: "user", content: prompts[Math.floor(i / n)]! }],
        rawPrompt: true,
        sampling: {
          ...completionSampling(body),
          // With a client's seed, choice j of a prompt samples with seed + j: the choices differ, the request repeats.
          ...(body.seed != null ? { seed: (body.seed + (i % n)) % 2 ** 32 } : {}),
          ...(stop ? { stop } : {}),
          ...(body.logprobs != null ? { logprobs: true, top_logprobs: body.logprobs } : {}),
        },
      }),
    );
    const cancelAll = () => {
      for (const job of jobs) if (!job.finished) deps.jobs.cancel(job.id, "client disconnected");
    };
    const head = { id: `cmpl-${jobs[0]!.id}`, object: "text_completion" as const, created: Math.floor(jobs[0]!.createdAt / 1000), model: body.model };
    const usage = () => usageOfPrompts(jobs, n);

    if (!body.stream) {
      reply.raw.once("close", () => {
        if (!reply.raw.writableEnded) cancelAll();
      });
      const failed = await firstFailureOrAllDone(deps.jobs, jobs);
      if (failed) {
        cancelAll();
        throw new TesseraError(failed.error!.code, failed.error!.message);
      }
      const completion: Completion = {
        ...head,
        choices: jobs.map((job, index): CompletionChoice => ({
          text: job.text,
          index,
          logprobs: body.logprobs != null ? legacyLogprobs(job.sentTokenLogprobs) : null,
          finish_reason: finishReasonOf(job),
        })),
        usage: usage(),
      };
      return completion;
    }

    const sse = openSse(reply);
    sse.onClientGone(cancelAll);
    const includeUsage = body.stream_options?.include_usage === true;
    // As OpenAI streams completions: with include_usage every chunk carries `usage: null`, the last one the usage.
    const chunk = (choices: CompletionChoice[], final?: Completion["usage"]): Completion => ({
      ...head,
      choices,
      ...(includeUsage ? { usage: final ?? null } : {}),
    });
    // Each choice's characters so far: where the next chunk's tokens start (`text_offset`).
    const sent = jobs.map(() => 0);
    const stopRelay = relayChoices(
      deps.jobs,
      jobs,
      {
        text: (index, _job, text, tokens) => {
          const logprobs = body.logprobs != null ? legacyLogprobs(tokens ?? [], sent[index]) : null;
          sent[index]! += text.length;
          sse.write(sseData(chunk([{ text, index, logprobs, finish_reason: null }])));
        },
        finished: (index, job) => sse.write(sseData(chunk([{ text: "", index, logprobs: null, finish_reason: finishReasonOf(job) }]))),
        allDone: () => {
          if (includeUsage) sse.write(sseData(chunk([], usage())));
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
}

function finishReasonOf(job: LiveJob): CompletionFinishReason {
  return job.finishReason === "length" ? "length" : "stop";
}

/** As OpenAI counts several prompts with `n` choices each: every prompt once, every choice's completion tokens. */
function usageOfPrompts(jobs: LiveJob[], n: number): Completion["usage"] {
  let total = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for (let i = 0; i < jobs.length; i += n) {
    const u = usageOf(jobs.slice(i, i + n));
    total = { prompt_tokens: total.prompt_tokens + u.prompt_tokens, completion_tokens: total.completion_tokens + u.completion_tokens, total_tokens: total.total_tokens + u.total_tokens };
  }
  return total;
}
