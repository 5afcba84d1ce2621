import type { TokenLogprob, Usage } from "@tessera/protocol";
import type { JobManager } from "../jobs/job-manager.js";
import type { LiveJob } from "../jobs/live-job.js";

/** The job machinery as the choices see it: follow a job, stop one. */
export type ChoiceJobs = Pick<JobManager, "subscribe" | "cancel">;

/**
 * What the OpenAI routes that answer with `n` choices share (`/v1/chat/completions`, `/v1/completions`): each choice
 * is a job of its own; the first failure fails the request and stops the others; usage counts the prompt once.
 */

/**
 * Submits one job per choice, in order. A choice refused at submission (no such model, a full queue) cancels those
 * already submitted, and the refusal is thrown.
 */
export async function submitEach(manager: ChoiceJobs, count: number, submitOne: (index: number) => Promise<LiveJob>): Promise<LiveJob[]> {
  const jobs: LiveJob[] = [];
  try {
    for (let i = 0; i < count; i++) jobs.push(await submitOne(i));
  } catch (err) {
    for (const job of jobs) manager.cancel(job.id, "another choice of the request was refused");
    throw err;
  }
  return jobs;
}

/** As OpenAI counts `n` choices of one prompt: the prompt once, every choice's completion tokens. */
export function usageOf(jobs: LiveJob[]): Usage {
  const prompt = jobs[0]?.promptTokens ?? 0;
  const completion = jobs.reduce((sum, job) => sum + job.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/**
 * Resolves once every job has finished, with undefined, or as soon as one fails, with that job: the first failure
 * fails the request at once, and the other choices are stopped rather than waited for.
 */
export function firstFailureOrAllDone(manager: ChoiceJobs, jobs: LiveJob[]): Promise<LiveJob | undefined> {
  return new Promise((resolve) => {
    let open = jobs.length;
    const ended = (job: LiveJob) => {
      if (job.status !== "completed") return resolve(job);
      if (--open === 0) resolve(undefined);
    };
    for (const job of jobs) {
      if (job.finished) {
        ended(job);
        continue;
      }
      const unsubscribe = manager.subscribe(job, (event) => {
        if (event.type === "text") return;
        unsubscribe();
        ended(job);
      });
    }
  });
}

/** What a streamed response does with its choices' events (it writes each in its own chunk shape). */
export interface ChoiceRelay {
  /**
   * New text of choice `index`, with the log-probabilities of its tokens when the job asked for them (what the client
   * was already sent is replayed first, once).
   */
  text(index: number, job: LiveJob, text: string, logprobs: readonly TokenLogprob[] | undefined): void;
  /** Choice `index` completed. */
  finished(index: number, job: LiveJob): void;
  /** Every choice completed: the usage chunk if asked, then `[DONE]`. */
  allDone(): void;
  /** A choice failed: its error event; the others are cancelled and the stream ends. */
  failed(job: LiveJob): void;
}

/**
 * Relays the choices' events to a stream until every choice has completed or one has failed, then calls `end` once.
 * Returns what stops the relay early (the client went away).
 */
export function relayChoices(manager: ChoiceJobs, jobs: LiveJob[], relay: ChoiceRelay, end: () => void): () => void {
  let open = jobs.length;
  let ended = false;
  const unsubscribes: Array<() => void> = [];
  const stop = () => {
    ended = true;
    for (const unsubscribe of unsubscribes) unsubscribe();
  };
  const finish = (job: LiveJob, index: number) => {
    if (ended) return;
    if (job.status !== "completed") {
      for (const other of jobs) if (!other.finished) manager.cancel(other.id, "another choice of the request failed");
      relay.failed(job);
      stop();
      return end();
    }
    relay.finished(index, job);
    if (--open > 0) return;
    relay.allDone();
    stop();
    end();
  };
  jobs.forEach((job, index) => {
    if (job.visibleText) relay.text(index, job, job.visibleText, job.sentTokenLogprobs);
  });
  jobs.forEach((job, index) => {
    if (ended) return;
    if (job.finished) return finish(job, index);
    const unsubscribe = manager.subscribe(job, (event) => {
      if (ended) return;
      if (event.type === "text") return relay.text(index, job, event.text, event.logprobs);
      unsubscribe();
      finish(job, index);
    });
    unsubscribes.push(unsubscribe);
  });
  return stop;
}
