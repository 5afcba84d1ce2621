import { type JobAssignment, type ResultCommitmentInput, type Signer, type StreamPart, resultCommitment, signResultCommitment } from "@tessera/protocol";
import type { BackendAdapter, GenerateRequest } from "./backends/adapter.js";
import type { NodeLogger } from "./logger.js";
import { type ServedJournal, ServedTally } from "./receipts/index.js";

/** Sends one text frame on the session the job arrived on; a no-op once that session is gone. */
export type FrameSender = (frame: string) => void;

/** The abort reason of jobs whose session went away (`abortAll(SESSION_LOST)`): the journal records them as lost. */
export const SESSION_LOST = "session lost";

/** The abort reason of jobs handed back to the coordinator (`handBack`, the idle policy). */
export const HANDED_BACK = "handed back";

export type RejectReason = "draining" | "at_capacity" | "model_not_served" | "duplicate_job";

export interface JobRunnerOptions {
  backend: BackendAdapter;
  maxConcurrency: number;
  /** Current served model ids (the inventory may change while running). */
  isServed: (model: string) => boolean;
  logger: NodeLogger;
  /** Monotonic-enough milliseconds, for durations in log lines. */
  now: () => number;
  /** Signs each answer's result commitment (a `result` part before `finish`); without it none is sent. */
  signer?: Signer;
  /** The served model's file SHA-256, where the node has the file. */
  modelSha256?: (model: string) => string | undefined;
  /** Where each accepted job and each turn's end is recorded, so the node can check receipts later (receipts/). */
  journal?: Pick<ServedJournal, "accepted" | "ended">;
}

interface RunningJob {
  controller: AbortController;
  done: Promise<void>;
  /** Handed back (`handBack`): its own frames are already sent; nothing more goes out for it. */
  handedBack: boolean;
  /** The session's sender and the job's frame prefix, for `handBack`. */
  send: FrameSender;
  prefix: string;
}

export interface JobStats {
  completed: number;
  failed: number;
  cancelled: number;
  rejected: number;
}

/**
 * Runs jobs pushed by the coordinator on the backend and streams their parts back.
 *
 * Contract per job: `job.accept` (or `job.reject`) goes out before any backend work; then every part the adapter
 * yields, in order, each as ONE frame built from a cached per-job prefix and one `JSON.stringify` (no schema
 * validation on this hot path); the stream always ends with exactly one `finish` part, supplied by the runner if
 * the adapter breaks its contract or the job is aborted before the adapter says so.
 */
export class JobRunner {
  private readonly jobs = new Map<string, RunningJob>();
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  readonly stats: JobStats = { completed: 0, failed: 0, cancelled: 0, rejected: 0 };

  constructor(private readonly options: JobRunnerOptions) {}

  get activeJobs(): number {
    return this.jobs.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Stops taking jobs; in-flight ones continue. */
  startDraining(): void {
    this.draining = true;
  }

  /** Takes jobs again (the idle policy re-enlisting after a drain). */
  resume(): void {
    this.draining = false;
  }

  /**
   * Hands every in-flight job back to the coordinator now (the machine's owner is back): each gets an `error` part
   * with the retryable `no_capacity` code and `finish: error`, which the coordinator answers by continuing the job on
   * another node from the tokens already relayed (no offence counted); then its backend call is aborted and nothing
   * more is sent for it. Returns how many jobs were handed back.
   */
  handBack(reason: string): number {
    let count = 0;
    for (const [jobId, job] of this.jobs) {
      if (job.handedBack) continue;
      job.handedBack = true;
      count++;
      job.send(job.prefix + JSON.stringify({ type: "error", code: "no_capacity", message: `node stepped aside (${reason}); the job continues on another node` }) + "}");
      job.send(job.prefix + '{"type":"finish","reason":"error"}}');
      this.options.logger.info({ job: jobId }, `job handed back to the coordinator (${reason})`);
      job.controller.abort(HANDED_BACK);
    }
    return count;
  }

  assign(job: JobAssignment, send: FrameSender): void {
    const id = JSON.stringify(job.job_id);
    const reason = this.rejectReason(job);
    if (reason) {
      this.stats.rejected++;
      send(`{"type":"job.reject","job_id":${id},"reason":"${reason}"}`);
      this.options.logger.warn({ job: job.job_id, model: job.model }, `job rejected (${reason})`);
      return;
    }
    send(`{"type":"job.accept","job_id":${id}}`);
    this.options.journal?.accepted(this.servedFields(job));
    const controller = new AbortController();
    const prefix = `{"type":"job.part","job_id":${id},"part":`;
    const running: RunningJob = { controller, done: Promise.resolve(), handedBack: false, send, prefix };
    this.jobs.set(job.job_id, running);
    const guarded: FrameSender = (frame) => {
      if (!running.handedBack) send(frame);
    };
    running.done = this.run(job, controller, guarded, prefix).finally(() => {
      this.jobs.delete(job.job_id);
      if (this.jobs.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    });
  }

  /** Aborts one job's backend call (`job.cancel`); unknown ids are ignored (the job may have just finished). */
  cancel(jobId: string, reason: string): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    this.options.logger.info({ job: jobId }, `job cancelled by coordinator (${reason})`);
    job.controller.abort(reason);
  }

  /** Aborts every in-flight job, e.g. when the session they belong to is gone. */
  abortAll(reason: string): void {
    for (const job of this.jobs.values()) job.controller.abort(reason);
  }

  /** Resolves when no job is in flight. */
  idle(): Promise<void> {
    if (this.jobs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * The node's signature over what it streamed (result-commitment.ts), sent just before `finish`; returns the
   * commitment's digest (kept in the served-work journal), or null when none was sent.
   */
  private commit(job: JobAssignment, answer: CommittedAnswer, finishReason: "stop" | "length", emit: (part: StreamPart) => void): string | null {
    const { signer, modelSha256 } = this.options;
    if (!signer || !answer.tokens) return null;
    const model = modelSha256?.(job.model) ?? null;
    const input: ResultCommitmentInput = {
      jobId: job.job_id,
      modelSha256: model,
      sampling: { temperature: job.sampling.temperature, top_p: job.sampling.top_p, max_tokens: job.sampling.max_tokens, seed: job.sampling.seed ?? 0 },
      finishReason,
      outputTokens: answer.tokens,
      logprobs: answer.logprobs ?? [],
    };
    emit({ type: "result", finish_reason: finishReason, model_sha256: model, signature: signResultCommitment(signer, input) });
    return resultCommitment(input);
  }

  private servedFields(job: JobAssignment): { job_id: string; model: string; model_sha256: string | null; stop: boolean } {
    return { job_id: job.job_id, model: job.model, model_sha256: this.options.modelSha256?.(job.model) ?? null, stop: (job.sampling.stop?.length ?? 0) > 0 };
  }

  private rejectReason(job: JobAssignment): RejectReason | undefined {
    if (this.draining) return "draining";
    if (this.jobs.has(job.job_id)) return "duplicate_job";
    if (!this.options.isServed(job.model)) return "model_not_served";
    if (this.jobs.size >= this.options.maxConcurrency) return "at_capacity";
    return undefined;
  }

  private async run(job: JobAssignment, controller: AbortController, send: FrameSender, prefix: string): Promise<void> {
    const { logger, now, backend } = this.options;
    const started = now();
    logger.info({ job: job.job_id, model: job.model }, `job received (${job.model}, max_tokens ${job.sampling.max_tokens})`);
    const request: GenerateRequest = {
      model: job.model,
      messages: job.messages,
      ...(job.raw_prompt ? { rawPrompt: true } : {}),
      sampling: job.sampling,
      signal: controller.signal,
      ...(job.assistant_prefix !== undefined ? { assistantPrefix: job.assistant_prefix } : {}),
      ...(job.assistant_prefix_tokens !== undefined ? { assistantPrefixTokens: job.assistant_prefix_tokens } : {}),
      // The job's canonical prompt (issue 17 §0): run the ids the first node reported, or report the ones run here
      // (tool chats too: canonical backends write tools Tessera's one way; the others report no ids for them).
      ...(job.prompt_tokens !== undefined ? { promptTokens: job.prompt_tokens } : job.raw_prompt ? {} : { reportPromptTokens: true }),
    };
    let finish: string | undefined;
    let completionTokens = 0;
    let errorMessage: string | undefined;
    const emit = (part: StreamPart) => send(prefix + JSON.stringify(part) + "}");
    const answer = new CommittedAnswer();
    const tally = new ServedTally();
    let commitment: string | null = null;
    try {
      for await (const part of backend.doStream(request)) {
        if (finish !== undefined) continue; // nothing may follow the one finish part
        answer.observe(part);
        tally.observe(part);
        if (part.type === "finish" && (part.reason === "stop" || part.reason === "length")) commitment = this.commit(job, answer, part.reason, emit);
        send(prefix + JSON.stringify(part) + "}");
        if (part.type === "usage") completionTokens = part.completion_tokens;
        else if (part.type === "finish") finish = part.reason;
        else if (part.type === "error") errorMessage = part.message;
      }
    } catch (err) {
      // The adapter contract says errors are parts; a throw is a bug in the adapter, reported as one.
      if (finish === undefined && !controller.signal.aborted) {
        errorMessage = err instanceof Error ? err.message : String(err);
        emit({ type: "error", code: "internal_error", message: `backend failed: ${errorMessage}` });
      }
    }
    if (finish === undefined) {
      finish = controller.signal.aborted ? "cancelled" : "error";
      if (finish === "error" && errorMessage === undefined) {
        errorMessage = "backend stream ended without a finish part";
        emit({ type: "error", code: "internal_error", message: errorMessage });
      }
      emit({ type: "finish", reason: finish as "cancelled" | "error" });
    }
    const end = finish === "stop" || finish === "length" ? "finished" : controller.signal.reason === SESSION_LOST ? "lost" : finish === "cancelled" || controller.signal.aborted ? "cancelled" : "failed";
    this.options.journal?.ended({ ...this.servedFields(job), end, output_tokens: tally.outputTokens, result_commitment: commitment });
    const seconds = Math.max(now() - started, 1) / 1000;
    const fields = { job: job.job_id, tokens: completionTokens };
    if (finish === "cancelled" || controller.signal.aborted) {
      this.stats.cancelled++;
      logger.info(fields, `job cancelled after ${completionTokens} tokens in ${seconds.toFixed(2)} s`);
    } else if (finish === "error") {
      this.stats.failed++;
      logger.warn(fields, `job failed: ${errorMessage ?? "backend error"}`);
    } else {
      this.stats.completed++;
      const rate = completionTokens / seconds;
      logger.info(fields, `job complete: ${completionTokens} tokens in ${seconds.toFixed(2)} s (${rate.toFixed(1)} tok/s)`);
    }
  }
}

/**
 * The token ids and log-probabilities of an answer as the coordinator will have relayed them: every text delta's and
 * the tool-calls part's ids in order (undefined once one came without), and the log-probabilities when every delta
 * carried them (never for a call).
 */
class CommittedAnswer {
  tokens: number[] | undefined = [];
  logprobs: number[] | undefined = [];

  observe(part: StreamPart): void {
    if (part.type === "tool-calls") {
      // A call answer's ids come with its one tool-calls part (the call was generated as tokens like any text);
      // they carry no log-probabilities (a grammar chose them).
      if (this.tokens && part.tokens) this.tokens.push(...part.tokens);
      else this.tokens = undefined;
      this.logprobs = undefined;
      return;
    }
    // An empty delta without ids carries nothing (the coordinator drops it too).
    if (part.type !== "text-delta" || (part.text.length === 0 && !part.tokens?.length)) return;
    if (this.tokens && part.tokens) this.tokens.push(...part.tokens);
    else this.tokens = undefined;
    if (this.logprobs && part.logprobs && part.tokens && part.logprobs.length === part.tokens.length) this.logprobs.push(...part.logprobs);
    else this.logprobs = undefined;
  }
}
