import { randomInt, randomUUID } from "node:crypto";
import {
  AfterIoQueue,
  type ChatMessage,
  type ErrorCode,
  type ResultCommitmentInput,
  type Sampling,
  type SignatureVerifier,
  type StreamPart,
  type TextDeltaPart,
  offersAll,
  ERROR_CODES,
  TesseraError,
  isErrorCode,
  resultCommitment,
  sha256Hex,
  verifyResultCommitment,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { LiveNode, NodeRegistry } from "../registry.js";
import type { NodeChooser } from "./node-chooser.js";
import type { JobStorePort } from "./job-store-port.js";
import { type Attempt, type JobEvent, LiveJob, type Segment } from "./live-job.js";
import type { Logger } from "../logger.js";
import type { CoordinatorMetrics } from "../metrics.js";
import type { SpeedMetrics } from "./speed-metrics.js";
import type { SpeedWrites } from "./speed-writes.js";
import type { NodeStanding, Offence } from "../trust/node-standing.js";
import type { DeliveredAnswer, SpotChecks } from "../trust/spot-checks.js";
import type { JobBilling } from "../payments/job-billing.js";
import type { JobSink } from "../workers/job-sink.js";
import { decisionTimer } from "./decision-timer.js";
import { fileMatch } from "../scheduler/index.js";
import { scanForStop } from "./stop-sequences.js";
import { creditCompletion, creditPrompt, promptTokenBound } from "./honest-usage.js";
import { type ProgressLimits, DEFAULT_PROGRESS_LIMITS, firstPartDeadline, nextPartDeadline, prefillAllowanceMs } from "./progress-deadline.js";

export interface JobManagerOptions {
  clock: Clock;
  registry: NodeRegistry;
  store: JobStorePort;
  chooser: NodeChooser;
  logger: Logger;
  pendingTimeoutMs: number;
  jobTimeoutMs: number;
  acceptTimeoutMs: number;
  resultTtlMs: number;
  /**
   * The replica this job manager runs in: it owns the jobs it creates, and writes their records only while they are
   * unfinished and still its own (a compare-and-set), so it never overwrites what another replica ended.
   */
  replicaId: string;
  /** A job is given up after this many node attempts (each failed node is excluded from the next). */
  maxAttempts?: number;
  metrics?: CoordinatorMetrics;
  /** Where measured speed per node and model goes (the scheduler reads it). */
  speed: SpeedMetrics;
  /** Where it is kept for a restart (written behind, in batches). */
  speedWrites: Pick<SpeedWrites, "add">;
  /** How long an accepted job may go without a part before it is moved to another node. */
  progress?: ProgressLimits;
  /** Told how each node's turn at a job ended (reputation, cooldowns, probation). */
  standing?: Pick<NodeStanding, "recordOutcome">;
  /** Told of every answer one node produced alone and ended itself, once the client has it (spot checks). */
  checks?: Pick<SpotChecks, "afterDelivery">;
  /** The job's money (payments/job-billing.ts): escrow on submit, settlement or refund at the end. Absent: free. */
  billing?: Pick<JobBilling, "open" | "settle" | "refund">;
  /** Checks nodes' result signatures (the protocol's reference when absent). */
  verifier?: SignatureVerifier;
  /** Runs a finished job's signature check and settlement after the I/O already in (a queue of its own when absent). */
  afterIo?: AfterIoQueue;
}

/** Errors a node may answer with to decline a job before doing any work (like `job.reject`): nobody's offence. */
const DECLINE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["no_capacity", "rate_limited"]);

export interface SubmitRequest {
  ownerId: string;
  model: string;
  messages: ChatMessage[];
  sampling: Sampling;
  nodeId?: string;
  /** `messages` is one user message holding the entire prompt, fed as is (session.ts `JobAssignment.raw_prompt`). */
  rawPrompt?: boolean;
  /** The answer is checked whatever its node's tier (a canary): decided with the job, so no answer can beat the mark. */
  alwaysCheck?: boolean;
}

const FINISHED_RETENTION_MS = 60_000;
const UNFINISHED = ["pending", "processing"] as const;

/**
 * Owns every job in flight: queueing, dispatch to workers (workers/worker.ts), the relay of stream parts to
 * subscribers, failover, timeouts, and the durable record. Workers report back through the `JobSink` it implements.
 * All state changes happen on the event loop in response to a submit, a worker's report, a lost worker or a tick, so
 * there are no races between them.
 */
export class JobManager implements JobSink {
  private readonly live = new Map<string, LiveJob>();
  private readonly pending: LiveJob[] = [];
  private readonly lookupNode = (nodeId: string) => this.o.registry.get(nodeId);
  /** Times routing decisions for the metrics (absent without metrics). */
  private readonly decisionTimer;

  private readonly maxAttempts: number;
  /** Where a finished job's bookkeeping waits for the I/O already in (after-io-queue.ts). */
  private readonly afterIo: AfterIoQueue;
  private readonly progress: ProgressLimits;

  constructor(private o: JobManagerOptions) {
    this.maxAttempts = o.maxAttempts ?? 5;
    this.afterIo = o.afterIo ?? new AfterIoQueue();
    this.progress = o.progress ?? DEFAULT_PROGRESS_LIMITS;
    this.decisionTimer = o.metrics ? decisionTimer() : undefined;
  }

  /**
   * Creates the job durably, queues it, and tries to dispatch it at once. The job goes to a node first and its record
   * is built and written after: the client waits for the node's first token, not for the write, and every later write
   * of the job queues behind this one (`job.persisted`). Resolves once the record is written; a job that could not be
   * stored is stopped on its node and refused with `store_error`, and nothing of it is kept.
   */
  async submit(req: SubmitRequest): Promise<LiveJob> {
    const now = this.o.clock.now();
    // The coordinator issues the seed a client did not choose: every node (and a later check) samples with it, and the
    // node's signed result commitment names it.
    const sampling = req.sampling.seed === undefined ? { ...req.sampling, seed: randomInt(2 ** 32) } : req.sampling;
    if (req.rawPrompt && (req.messages.length !== 1 || req.messages[0]!.role !== "user")) {
      throw new TesseraError("bad_request", "a raw-prompt job carries its prompt as exactly one user message");
    }
    const job = new LiveJob(randomUUID(), req.ownerId, req.model, req.messages, sampling, req.nodeId, now, req.rawPrompt === true, req.alwaysCheck === true);
    // The greatest cost is held before the job exists anywhere: a client who cannot cover it gets insufficient_funds.
    await this.o.billing?.open(job);
    // The record is sealed, hashed and built once the assignment has gone out (released after `dispatch` below, so it
    // runs after the microtask in which the bus client writes a remote node's assignment, and still before any I/O):
    // the node starts on the prompt while this process does that work.
    let assigned!: () => void;
    const stored = new Promise<void>((resolve) => (assigned = resolve)).then(() =>
      this.o.store.insertJob({
        id: job.id,
        ownerId: job.ownerId,
        model: job.model,
        status: "pending",
        messages: job.messages,
        // A raw prompt hashes as its own kind, never as the chat of one user message with the same text.
        promptSha256: sha256Hex(job.rawPrompt ? JSON.stringify({ raw_prompt: job.messages[0]!.content }) : JSON.stringify(job.messages)),
        sampling: job.sampling,
        createdAt: new Date(now),
        contentExpiresAt: new Date(now + this.o.resultTtlMs),
        replicaId: this.o.replicaId,
      }),
    );
    job.persisted = stored.then(
      () => undefined,
      () => undefined,
    );
    this.live.set(job.id, job);
    this.pending.push(job);
    try {
      this.dispatch();
    } finally {
      assigned();
    }
    try {
      await stored;
    } catch (err) {
      // Never stored: stopped wherever it went, its escrow returned, and the client refused.
      job.recordClosed = true;
      this.fail(job, "store_error", "the job could not be stored");
      this.live.delete(job.id);
      this.o.billing?.refund(job).catch((again: unknown) => this.o.logger.error({ err: again, job: job.id }, "could not refund the escrow of a job that was not stored"));
      // The store's own refusals (bad_request, conflict) keep their code; a write that failed is a store_error.
      if (err instanceof TesseraError) throw err;
      this.o.logger.error({ err, job: job.id }, "could not store a new job");
      throw new TesseraError("store_error", "the job could not be stored; retry the request", { cause: err });
    }
    return job;
  }

  /** A job this coordinator holds, including ones finished in the last minute (their store write may still be landing). */
  get(jobId: string): LiveJob | undefined {
    return this.live.get(jobId);
  }

  /** Adds a listener for live events; the caller replays `job.text` first for what was already generated. */
  subscribe(job: LiveJob, listener: (event: JobEvent) => void): () => void {
    job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }

  /** The client went away: stop the work on the node (no GPU time spent on nobody). */
  cancel(jobId: string, reason: string): void {
    const job = this.live.get(jobId);
    if (job && !job.finished) this.fail(job, "cancelled", reason);
  }

  /**
   * Shutdown: fails every unfinished job with `code` (each subscriber gets the failed event, so every open stream
   * writes its final error in its own format and a waiting request gets its error answer), then resolves once every
   * held job's store writes have landed, so the store can be closed after it.
   */
  async failUnfinished(code: ErrorCode, message: string): Promise<void> {
    for (const job of [...this.live.values()]) if (!job.finished) this.fail(job, code, message);
    await Promise.all([...this.live.values()].map((job) => job.persisted));
  }

  /** Billing is made after the job manager (it needs the registry's view of nodes); set once, before any job. */
  attachBilling(billing: JobManagerOptions["billing"]): void {
    this.o.billing = billing;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Jobs waiting for or running on a node. */
  get activeCount(): number {
    let n = 0;
    for (const job of this.live.values()) if (!job.finished) n++;
    return n;
  }

  accepted(workerId: string, jobId: string): void {
    const job = this.jobOnNode(jobId, workerId);
    if (job) this.accept(job);
  }

  rejected(workerId: string, jobId: string, reason: string): void {
    const job = this.jobOnNode(jobId, workerId);
    if (!job) return;
    this.o.logger.info({ job: job.id, node: short(workerId), reason }, "job rejected by node");
    this.takeBack(job, { exclude: true });
    this.dispatch();
  }

  part(workerId: string, jobId: string, part: StreamPart): void {
    const job = this.jobOnNode(jobId, workerId);
    if (job) this.onPart(job, part);
  }

  failed(workerId: string, jobId: string, code: ErrorCode, message: string): void {
    const job = this.jobOnNode(jobId, workerId);
    if (job) this.fail(job, code, message);
  }

  /** A worker's session dropped or it went silent: every job it held moves on, continuing from the text sent. */
  lost(workerId: string, reason: string): void {
    const record = this.o.registry.get(workerId);
    if (!record) return;
    for (const jobId of [...record.activeJobs]) {
      const job = this.live.get(jobId);
      if (!job || job.attempt?.nodeId !== workerId) {
        record.activeJobs.delete(jobId);
        continue;
      }
      this.o.logger.warn({ job: job.id, node: short(workerId), reason, sent_chars: job.text.length }, "node lost; failing over");
      this.o.metrics?.failovers.inc();
      this.takeBack(job, { exclude: true, front: true, offence: "lost" });
    }
    this.dispatch();
  }

  /** Deadlines: accept, progress, queue wait, job timeout. Called every second and by tests after moving the clock. */
  tick(): void {
    const now = this.o.clock.now();
    for (const job of [...this.live.values()]) {
      if (job.finished) {
        if (now - job.completedAt! >= FINISHED_RETENTION_MS) this.live.delete(job.id);
        continue;
      }
      if (now - job.createdAt >= this.o.jobTimeoutMs) {
        this.fail(job, "timeout", `job did not complete within ${Math.round(this.o.jobTimeoutMs / 1000)} s`, "timed_out");
      } else if (job.attempt && job.attempt.acceptedAt === undefined && now >= job.attempt.acceptDeadline) {
        this.o.logger.warn({ job: job.id, node: short(job.attempt.nodeId) }, "node did not accept in time; reassigning");
        this.takeBack(job, { exclude: true, front: true, offence: "timed_out" });
      } else if (job.attempt?.progressDeadline !== undefined && now >= job.attempt.progressDeadline) {
        // Accepted, then silent: the node may be wedged while its session and heartbeats look healthy. Treated as a
        // lost node for this job (continued elsewhere from the text already sent), not for its other jobs.
        const attempt = job.attempt;
        const waited = now - (attempt.lastPartAt ?? attempt.acceptedAt!);
        const phase = attempt.firstTokenAt === undefined ? "first token" : "next token";
        this.o.logger.warn({ job: job.id, node: short(attempt.nodeId), phase, silent_ms: waited, sent_chars: job.text.length }, "node stalled; failing over");
        this.o.metrics?.failovers.inc();
        this.o.metrics?.stalls.inc({ phase: attempt.firstTokenAt === undefined ? "first_token" : "between_tokens" });
        this.takeBack(job, { exclude: true, front: true, offence: "stalled" });
      } else if (job.status === "pending" && !job.attempt && now - job.queuedAt >= this.o.pendingTimeoutMs) {
        this.fail(job, "no_capacity", `no node was free to serve model "${job.model}" within ${Math.round(this.o.pendingTimeoutMs / 1000)} s`);
      }
    }
    this.dispatch();
  }

  /** Gives queued jobs to free nodes, oldest first. Cheap when nothing is pending. */
  dispatch(): void {
    if (this.pending.length === 0) return;
    const now = this.o.clock.now();
    const nodes = [...this.o.registry.all()];
    // Jobs no wait can help (every node serving the model is quarantined) fail after the loop, which `fail` re-enters.
    let unservable: Array<[LiveJob, string]> | undefined;
    for (let i = 0; i < this.pending.length; ) {
      const job = this.pending[i]!;
      this.decisionTimer?.start();
      const choice = this.o.chooser.choose(job, nodes, now, this.lookupNode);
      if (this.o.metrics) {
        const took = this.decisionTimer!.stop();
        this.o.metrics.routingDecision.observe(took.wallSeconds);
        this.o.metrics.routingDecisionCpu.observe(took.cpuSeconds);
      }
      if (choice.nodeId === undefined) {
        if (choice.waitable === false) (unservable ??= []).push([job, choice.reason]);
        i++;
        continue;
      }
      this.pending.splice(i, 1);
      this.assign(job, this.o.registry.get(choice.nodeId)!);
    }
    for (const [job, reason] of unservable ?? []) if (!job.finished) this.fail(job, "no_capacity", reason);
  }

  private assign(job: LiveJob, node: LiveNode): void {
    const now = this.o.clock.now();
    job.attempts++;
    const prefixTokens = job.completionTokens;
    node.activeJobs.add(job.id);
    const continuation = job.text.length > 0;
    // A continuation generates only what is left of the token budget.
    const budget = job.sampling.max_tokens - prefixTokens;
    job.attempt = {
      nodeId: node.id,
      assignedAt: now,
      acceptDeadline: now + this.o.acceptTimeoutMs,
      completionTokens: 0,
      exactTokens: true,
      relayedBytes: 0,
      budget,
      promptBound: promptTokenBound(job.messages, job.text, job.sampling),
      promptEstimate: job.estimatedPromptTokens,
      prefixTokens,
      continuation,
      nodeLoadAtStart: node.activeJobs.size,
      sentSampling: continuation ? { ...job.sampling, max_tokens: budget } : job.sampling,
      relayedTokens: [],
      relayedLogprobs: [],
    };
    const sampling = job.attempt.sentSampling;
    node.worker!.assign({
      job_id: job.id,
      model: job.model,
      messages: job.messages,
      ...(job.rawPrompt ? { raw_prompt: true } : {}),
      sampling,
      ...(continuation ? { assistant_prefix: job.text } : {}),
      ...(continuation && job.tokenIds ? { assistant_prefix_tokens: job.tokenIds } : {}),
      ...(job.promptTokenIds ? { prompt_tokens: job.promptTokenIds } : {}),
    });
    const file = continuation && job.modelSha256 !== undefined ? fileMatch(job.modelSha256, node.models.find((m) => m.id === job.model)?.sha256) : undefined;
    this.o.logger.info({ job: job.id, node: short(node.id), model: job.model, continuation, ...(continuation ? { prefix_tokens: prefixTokens } : {}), ...(file ? { file } : {}) }, "job assigned");
  }

  private accept(job: LiveJob): void {
    const attempt = job.attempt!;
    if (attempt.acceptedAt !== undefined) return;
    attempt.acceptedAt = this.o.clock.now();
    const node = this.o.registry.get(attempt.nodeId);
    attempt.progressDeadline = firstPartDeadline(
      attempt.acceptedAt,
      { measured: this.o.speed.get(attempt.nodeId, job.model), promptTokens: job.estimatedPromptTokens, load: node?.activeJobs.size ?? 1 },
      this.progress,
    );
    // The newcomer's prefill pauses the node's other streams: none of them is judged stalled for that pause.
    const pause = attempt.acceptedAt + prefillAllowanceMs(job.estimatedPromptTokens, this.progress);
    for (const otherId of node?.activeJobs ?? []) {
      const other = this.live.get(otherId)?.attempt;
      if (otherId !== job.id && other?.nodeId === attempt.nodeId && other.progressDeadline !== undefined && other.progressDeadline < pause) {
        other.progressDeadline = pause;
      }
    }
    if (job.status === "pending") {
      job.status = "processing";
      job.startedAt = attempt.acceptedAt;
      this.persist(job, { status: "processing", nodeId: attempt.nodeId, startedAt: new Date(job.startedAt) });
    }
  }

  private onPart(job: LiveJob, part: StreamPart): void {
    const attempt = job.attempt!;
    if (attempt.acceptedAt === undefined) this.accept(job);
    switch (part.type) {
      case "text-delta": {
        // A delta may carry tokens whose text is not complete yet (a UTF-8 character split across tokens). Those
        // tokens wait in `pendingTokenIds` until text arrives, so `text` and `tokenIds` always describe the same
        // prefix: a node that takes over regenerates the pending tokens itself.
        if (part.text.length === 0 && !part.tokens?.length) return;
        noteRelayed(attempt, part);
        const now = this.o.clock.now();
        attempt.firstTokenAt ??= now;
        attempt.lastPartAt = now;
        attempt.progressDeadline = nextPartDeadline(
          now,
          { measured: this.o.speed.get(attempt.nodeId, job.model), load: this.o.registry.get(attempt.nodeId)?.activeJobs.size ?? 1 },
          this.progress,
        );
        if (job.tokenIds) {
          if (part.tokens) job.pendingTokenIds.push(...part.tokens);
          else job.tokenIds = undefined;
        }
        if (job.sampling.logprobs && part.token_logprobs) job.pendingLogprobs.push(...part.token_logprobs);
        if (part.text.length === 0) return;
        const tokens = part.tokens ? job.pendingTokenIds.length : 1;
        if (!part.tokens) attempt.exactTokens = false;
        if (attempt.exactTokens && attempt.completionTokens + tokens > attempt.budget) {
          // More tokens than it was asked for: nothing past the budget reaches the client or the node's credit.
          this.flagUsage(job, attempt, "over_budget");
          this.cancelOnNode(job, attempt.nodeId, "over_budget");
          job.pendingTokenIds = [];
          this.complete(job, "length");
          return;
        }
        attempt.completionTokens += tokens;
        this.o.metrics?.completionTokens.inc(tokens);
        attempt.relayedBytes += Buffer.byteLength(part.text, "utf8");
        if (job.tokenIds) job.tokenIds.push(...job.pendingTokenIds);
        job.pendingTokenIds = [];
        for (const token of job.pendingLogprobs) job.logprobs.push({ start: job.text.length, token });
        job.pendingLogprobs = [];
        job.text += part.text;
        if (this.release(job)) {
          // A stop sequence: the answer ends before it, on whichever node produced it; the node stops too.
          this.cancelOnNode(job, attempt.nodeId, "stop sequence");
          this.complete(job, "stop");
        }
        return;
      }
      case "tool-calls":
        // Counted like text (ids where the node sent them), kept on the attempt until its finish.
        attempt.toolCalls = part.calls;
        // Its ids join the answer's (result commitments and spot checks judge a call like text); a grammar chose
        // them, so they carry no log-probabilities.
        if (attempt.relayedTokens && part.tokens) attempt.relayedTokens.push(...part.tokens);
        else attempt.relayedTokens = undefined;
        attempt.relayedLogprobs = undefined;
        if (!part.tokens) attempt.exactTokens = false;
        attempt.completionTokens += part.tokens?.length ?? part.calls.length;
        this.o.metrics?.completionTokens.inc(part.tokens?.length ?? part.calls.length);
        attempt.relayedBytes += Buffer.byteLength(JSON.stringify(part.calls), "utf8");
        attempt.lastPartAt = this.o.clock.now();
        return;
      case "prompt":
        this.keepPromptTokens(job, part.tokens);
        return;
      case "usage":
        attempt.reportedUsage = { prompt_tokens: part.prompt_tokens, completion_tokens: part.completion_tokens };
        return;
      case "result":
        attempt.result = part;
        return;
      case "finish":
        if (part.reason === "stop" || part.reason === "length") {
          job.toolCalls = attempt.toolCalls;
          this.complete(job, part.reason, { endedByNode: true });
        }
        return;
      case "error": {
        const code: ErrorCode = isErrorCode(part.code) ? part.code : "internal_error";
        if (code === "unsupported_parameter" && attempt.completionTokens === 0) {
          // The node's backend cannot honour a parameter after all (a combination its features could not say):
          // nobody's offence, and another node may; the client hears the refusal only when none can.
          this.o.logger.info({ job: job.id, node: short(attempt.nodeId), message: part.message }, "node declined a parameter; moving the job");
          this.takeBack(job, { exclude: true, front: true });
          if (!job.finished && !this.anyOtherNodeCanRun(job)) this.fail(job, code, part.message);
          else this.dispatch();
          return;
        }
        if (attempt.continuation && !ERROR_CODES[code].retryable) {
          // A node that was asked to continue another's answer and cannot (its backend has no way to resume an
          // assistant message): the answer cannot go on without repeating text, so the client is told so.
          this.fail(job, "node_disconnected", `the node serving this job was lost and no node could continue the answer (${part.message}); retry the request`);
          return;
        }
        if (ERROR_CODES[code].retryable && job.attempts < this.maxAttempts) {
          this.o.logger.warn({ job: job.id, node: short(attempt.nodeId), code, message: part.message }, "node reported a retryable error; moving the job");
          this.takeBack(job, { exclude: true, front: true, ...(DECLINE_CODES.has(code) ? {} : { offence: "failed" as const }) });
          this.dispatch();
        } else {
          this.fail(job, code, part.message, DECLINE_CODES.has(code) ? undefined : "failed");
        }
        return;
      }
    }
  }

  /** Ends the current attempt, credits its tokens, and (unless the job is over) puts the job back in the queue. */
  private takeBack(job: LiveJob, opts: { exclude: boolean; front?: boolean; offence?: Offence }): void {
    const attempt = this.endAttempt(job);
    if (!attempt) return;
    if (opts.offence) {
      this.o.standing?.recordOutcome(attempt.nodeId, opts.offence);
      this.checkPartAnswered(job, attempt);
    }
    if (opts.exclude) job.excludedNodes.add(attempt.nodeId);
    // The file the answer so far came from, for the continuation's choice of node (scheduler/design.md "Continuations").
    if (job.modelSha256 === undefined && attempt.relayedBytes > 0) job.modelSha256 = this.o.registry.get(attempt.nodeId)?.models.find((m) => m.id === job.model)?.sha256;
    this.cancelOnNode(job, attempt.nodeId, "reassigned");
    if (job.text.length > 0 && job.completionTokens >= job.sampling.max_tokens) {
      // The lost node had produced the whole token budget before it went: nothing is left to generate.
      this.complete(job, "length");
      return;
    }
    if (job.attempts >= this.maxAttempts) {
      this.fail(job, "node_disconnected", `job failed on ${job.attempts} nodes; giving up`);
      return;
    }
    job.queuedAt = this.o.clock.now();
    if (opts.front) this.pending.unshift(job);
    else this.pending.push(job);
  }

  /**
   * The part of an answer that its first node delivered before it left (lost, stalled or failed), handed to the spot
   * checks as an answer cut at its own length: its tokens, its log-probabilities and the prompt ids it claimed are
   * judged like any answer's, so a node cannot lie (about its prompt ids, to steer the node that continues, or about
   * its tokens) and then walk away unchecked. Later parts are not checked: their prompt includes another node's text.
   */
  private checkPartAnswered(job: LiveJob, attempt: Attempt): void {
    const tokens = attempt.relayedTokens;
    if (attempt.continuation || !tokens || tokens.length === 0) return;
    // Judged as cut by its token budget: no end-of-sequence claim, and the length is what it delivered.
    this.o.checks?.afterDelivery(deliveredAnswer(job, attempt, { sampling: { ...job.sampling, max_tokens: tokens.length }, finishReason: "length", claimedUsage: undefined }));
  }

  /**
   * `checkResult` checks the node's signed commitment to its answer; it runs after the client has its answer, in the
   * after-I/O queue (a signature check is a third of a millisecond), before the segment is written with what it found.
   */
  private endAttempt(job: LiveJob, checkResult?: () => { commitment: string; signature: string } | undefined): NonNullable<LiveJob["attempt"]> | undefined {
    const attempt = job.attempt;
    if (!attempt) return undefined;
    job.attempt = undefined;
    job.pendingTokenIds = [];
    this.o.registry.get(attempt.nodeId)?.activeJobs.delete(job.id);
    const tokens = this.creditedTokens(job, attempt);
    if (tokens > 0 || attempt.firstTokenAt !== undefined) {
      const segment: Segment = {
        nodeId: attempt.nodeId,
        completionTokens: tokens,
        startedAt: attempt.assignedAt,
        endedAt: this.o.clock.now(),
      };
      job.segments.push(segment);
      job.persisted = job.persisted
        .then(async () => {
          const result = checkResult && (await this.afterIo.run(checkResult));
          if (result) Object.assign(segment, { resultCommitment: result.commitment, resultSignature: result.signature });
          await this.o.store.addJobSegment({ jobId: job.id, ...segment, startedAt: new Date(segment.startedAt), endedAt: new Date(segment.endedAt) });
        })
        .catch((err: unknown) => this.o.logger.error({ err, job: job.id }, "could not store job segment"));
    }
    return attempt;
  }

  /**
   * The node's signed commitment to what it streamed, recomputed from what was relayed (result-commitment.ts): kept
   * with its segment when the signature holds; counted and logged when it is missing or does not match.
   */
  private checkResult(job: LiveJob, attempt: Attempt, reason: "stop" | "length"): { commitment: string; signature: string } | undefined {
    const claim = attempt.result;
    const count = (outcome: "valid" | "invalid" | "missing") => this.o.metrics?.resultCommitments.inc({ outcome });
    if (!claim) {
      count("missing");
      return undefined;
    }
    const served = this.o.registry.get(attempt.nodeId)?.models.find((m) => m.id === job.model);
    const s = attempt.sentSampling;
    const input: ResultCommitmentInput = {
      jobId: job.id,
      modelSha256: claim.model_sha256,
      sampling: { temperature: s.temperature, top_p: s.top_p, max_tokens: s.max_tokens, seed: s.seed ?? 0 },
      finishReason: reason,
      outputTokens: [...(attempt.relayedTokens ?? [])],
      logprobs: attempt.relayedLogprobs ?? [],
    };
    const why =
      claim.finish_reason !== reason ? "its finish reason differs"
      : !attempt.relayedTokens ? "not every token came with its id"
      : served?.sha256 !== undefined && served.sha256 !== claim.model_sha256 ? "it names another model file than the node registered"
      : !verifyResultCommitment(claim.signature, input, attempt.nodeId, this.o.verifier) ? "the signature does not match what was relayed"
      : undefined;
    if (why) {
      count("invalid");
      this.o.logger.warn({ job: job.id, node: short(attempt.nodeId), why }, "result commitment refused");
      return undefined;
    }
    count("valid");
    return { commitment: resultCommitment(input), signature: claim.signature };
  }

  /**
   * The first node's prompt ids (its `prompt` part), kept for continuations and spot checks. Not for raw prompts (the
   * text is the prompt already), and never past the job's own prompt-token bound: a node cannot hand its successors a
   * longer prompt than the messages make. Chats with tools count too: canonical backends write them in Tessera's one
   * tool format (node constrained/design.md), and the others report no ids for them. A later node's list is ignored:
   * the job has one prompt.
   */
  private keepPromptTokens(job: LiveJob, tokens: number[]): void {
    if (job.promptTokenIds || job.rawPrompt) return;
    if (tokens.length > promptTokenBound(job.messages, "", job.sampling)) {
      this.o.logger.warn({ job: job.id, node: short(job.attempt?.nodeId ?? ""), ids: tokens.length }, "prompt token ids over the job's bound, ignored");
      return;
    }
    job.promptTokenIds = [...tokens];
  }

  /** Completes the job: normally on its current attempt's finish; without one when a lost node had used up the budget. */
  private complete(job: LiveJob, reason: "stop" | "length", opts: { endedByNode?: boolean } = {}): void {
    const attempt = job.attempt;
    const now = this.o.clock.now();
    if (attempt) {
      this.recordMetrics(job, attempt, now);
      this.endAttempt(job, opts.endedByNode ? () => this.checkResult(job, attempt, reason) : undefined);
      this.o.standing?.recordOutcome(attempt.nodeId, "completed");
      if (attempt.reportedUsage) {
        const prompt = creditPrompt(attempt.reportedUsage.prompt_tokens, attempt.promptBound, attempt.promptEstimate);
        if (prompt.correction) this.flagUsage(job, attempt, "prompt_over_bound");
        job.promptTokens = Math.max(0, prompt.tokens - attempt.prefixTokens);
      }
    }
    const nodeId = attempt?.nodeId ?? job.segments.at(-1)!.nodeId;
    // Text held back as a possible start of a stop sequence was not one: the answer ended first.
    if (job.sentChars < job.text.length) this.send(job, job.text.length);
    job.status = "completed";
    job.finishReason = reason;
    job.completedAt = now;
    this.persist(job, {
      status: "completed",
      nodeId,
      content: job.text,
      outputSha256: sha256Hex(job.text),
      promptTokens: job.promptTokens ?? 0,
      completionTokens: job.completionTokens,
      completedAt: new Date(now),
      latencyMs: now - job.createdAt,
      // A completed record never carries an error, whatever an earlier write left.
      error: null,
      errorMessage: null,
    });
    this.bill(job, () =>
      this.o.billing!.settle({
        id: job.id,
        ownerId: job.ownerId,
        model: job.model,
        promptTokens: job.promptTokens ?? 0,
        outputSha256: sha256Hex(job.text),
        completedAt: now,
        segments: job.segments,
      }),
    );
    this.o.logger.info({ job: job.id, node: short(nodeId), tokens: job.completionTokens, nodes: job.segments.length }, "job completed");
    this.o.metrics?.jobsFinished.inc({ status: "completed", error: "" });
    job.emit({ type: "done", job });
    if (opts.endedByNode && attempt && !attempt.continuation && job.segments.length === 1) {
      this.o.checks?.afterDelivery(
        deliveredAnswer(job, attempt, {
          sampling: job.sampling,
          finishReason: reason,
          claimedUsage: attempt.reportedUsage && { promptTokens: attempt.reportedUsage.prompt_tokens, completionTokens: attempt.reportedUsage.completion_tokens },
        }),
      );
    }
    this.dispatch();
  }

  /** `offence`: the node holding the job is at fault (it errored or ran out the job's time), for its standing. */
  private fail(job: LiveJob, code: ErrorCode, message: string, offence?: Offence): void {
    const attempt = job.attempt;
    if (attempt) {
      this.cancelOnNode(job, attempt.nodeId, code);
      this.endAttempt(job);
      if (offence) this.o.standing?.recordOutcome(attempt.nodeId, offence);
    }
    const index = this.pending.indexOf(job);
    if (index !== -1) this.pending.splice(index, 1);
    const now = this.o.clock.now();
    job.status = "failed";
    job.error = { code, message };
    job.completedAt = now;
    this.persist(job, { status: "failed", error: code, errorMessage: message, completedAt: new Date(now), completionTokens: job.completionTokens });
    this.bill(job, () => this.o.billing!.refund(job));
    this.o.logger.info({ job: job.id, code, message }, "job failed");
    this.o.metrics?.jobsFinished.inc({ status: "failed", error: code });
    job.emit({ type: "failed", code, message });
    this.dispatch();
  }

  private recordMetrics(job: LiveJob, attempt: NonNullable<LiveJob["attempt"]>, now: number): void {
    if (attempt.firstTokenAt === undefined) return;
    const tokens = this.creditedTokens(job, attempt);
    const genMs = now - attempt.firstTokenAt;
    // The scheduler wants solo-equivalent figures (it applies queue depth itself): the per-stream rate times the
    // node's mean load over the attempt, and the time to first token less the session's round trip.
    const node = this.o.registry.get(attempt.nodeId);
    const meanLoad = (attempt.nodeLoadAtStart + (node?.activeJobs.size ?? 1)) / 2;
    const rtt = node?.worker?.rtt() ?? 0;
    const ttftMs = Math.max(0, attempt.firstTokenAt - attempt.assignedAt - rtt);
    const perStream = tokens > 1 && genMs > 0 ? ((tokens - 1) * 1000) / genMs : 0;
    const sample = { tokensPerSecond: perStream * Math.max(1, meanLoad), ttftMs };
    this.o.speed.record(attempt.nodeId, job.model, sample);
    this.o.speedWrites.add(attempt.nodeId, job.model, sample);
  }

  /** Tells the node to stop working on the job (its turn is over, for `reason`). */
  private cancelOnNode(job: LiveJob, nodeId: string, reason: string): void {
    this.o.registry.get(nodeId)?.worker?.cancel(job.id, reason);
  }

  /**
   * Sends the client what it may have of `job.text`: all of it, or with stop sequences up to the earliest one (the
   * text is cut there; returns true) or up to a tail that may yet become one (held back until the next text).
   */
  private release(job: LiveJob): boolean {
    const stops = job.sampling.stop;
    if (!stops) {
      this.send(job, job.text.length);
      return false;
    }
    const scan = scanForStop(job.text, job.sentChars, stops);
    if ("stopAt" in scan) {
      this.send(job, scan.stopAt);
      job.text = job.text.slice(0, scan.stopAt);
      job.logprobs.length = job.sentLogprobs; // the tokens of the stop sequence and after it
      return true;
    }
    this.send(job, scan.safeEnd);
    return false;
  }

  private send(job: LiveJob, upTo: number): void {
    if (upTo <= job.sentChars) return;
    const text = job.text.slice(job.sentChars, upTo);
    job.sentChars = upTo;
    if (!job.sampling.logprobs) return job.emit({ type: "text", text });
    // The tokens whose delta began before the cut go with this text (a delta split by a stop sequence: all of it).
    const from = job.sentLogprobs;
    while (job.sentLogprobs < job.logprobs.length && job.logprobs[job.sentLogprobs]!.start < upTo) job.sentLogprobs++;
    job.emit({ type: "text", text, logprobs: job.logprobs.slice(from, job.sentLogprobs).map((l) => l.token) });
  }

  /** The completion tokens an attempt is credited with (honest-usage.ts), worked out once, a correction flagged. */
  private creditedTokens(job: LiveJob, attempt: NonNullable<LiveJob["attempt"]>): number {
    if (attempt.credited !== undefined) return attempt.credited;
    const credit = creditCompletion({
      relayed: attempt.completionTokens,
      exact: attempt.exactTokens,
      bytes: attempt.relayedBytes,
      budget: attempt.budget,
      claimed: attempt.reportedUsage?.completion_tokens,
    });
    if (credit.correction) this.flagUsage(job, attempt, credit.correction);
    attempt.credited = credit.tokens;
    return credit.tokens;
  }

  /** A node's usage claim or stream did not add up: logged and counted (verification will weigh it against the node). */
  private flagUsage(job: LiveJob, attempt: NonNullable<LiveJob["attempt"]>, kind: string): void {
    this.o.logger.warn(
      { job: job.id, node: short(attempt.nodeId), kind, relayed: attempt.completionTokens, claimed: attempt.reportedUsage, budget: attempt.budget },
      "node usage corrected",
    );
    this.o.metrics?.usageCorrections.inc({ kind });
  }

  /**
   * Settles or refunds the job after its record's writes (queued behind them, off the client's path: the answer does
   * not wait for the accounts), in the after-I/O queue (issuing receipts signs them). A failure is logged; the escrow
   * stays held and the next start reconciles it.
   */
  private bill(job: LiveJob, work: () => Promise<unknown>): void {
    if (!this.o.billing) return;
    job.persisted = job.persisted.then(() => (job.recordClosed ? undefined : this.afterIo.run(work))).then(
      () => undefined,
      (err: unknown) => this.o.logger.error({ err, job: job.id }, "could not settle the job's payment; its escrow stays held until the next start reconciles it"),
    );
  }

  /**
   * Writes the record only while the job is unfinished and owned by this replica. A write that finds it otherwise
   * means another replica ended it (this one's lease had lapsed, replicas/design.md): the record is left as that
   * replica wrote it, a job still running here fails with `conflict`, and its money is left to whoever ended it.
   */
  private persist(job: LiveJob, patch: Parameters<JobStorePort["updateJob"]>[1]): void {
    job.persisted = job.persisted
      .then(async () => {
        if (job.recordClosed) return;
        const sealedAs = { createdAt: new Date(job.createdAt), contentExpiresAt: new Date(job.createdAt + this.o.resultTtlMs) };
        if (await this.o.store.updateJob(job.id, patch, { ifStatus: UNFINISHED, ifReplica: this.o.replicaId, sealedAs })) return;
        job.recordClosed = true;
        this.o.logger.warn({ job: job.id, status: patch.status }, "job record ended by another replica; left as it is");
        this.o.metrics?.jobsEndedElsewhere.inc();
        if (!job.finished) this.fail(job, "conflict", "another coordinator replica ended this job while it ran here; retry the request");
      })
      .catch((err: unknown) => this.onStoreFailure(job, patch, err));
  }

  /**
   * A write of a job's record failed, so the record no longer says what happened: the job must not stay `pending`
   * or `processing` there. A job still running is failed with `store_error` (its subscribers get that event, its
   * node a cancel). A finished one is failed with `store_error` in memory (a client asking for it hears that) and its
   * subscribers told, since its result cannot be fetched again. Either way a last, minimal write (no free text a
   * driver could choke on) tries to leave the record `failed`; the restart sweep fails whatever it could not.
   */
  private async onStoreFailure(job: LiveJob, patch: Parameters<JobStorePort["updateJob"]>[1], err: unknown): Promise<void> {
    this.o.logger.error({ err, job: job.id, status: patch.status }, "could not store job update");
    if (patch.error === "store_error") return; // that was already the last attempt
    const message = "the job's record could not be stored; retry the request";
    if (!job.finished) {
      this.fail(job, "store_error", message);
      return;
    }
    if (job.status === "completed") {
      job.status = "failed";
      job.error = { code: "store_error", message };
      job.emit({ type: "failed", code: "store_error", message });
    }
    const code = job.error?.code ?? "store_error";
    try {
      await this.o.store.updateJob(
        job.id,
        { status: "failed", error: code, errorMessage: message, completedAt: new Date(job.completedAt ?? this.o.clock.now()) },
        { ifStatus: UNFINISHED, ifReplica: this.o.replicaId },
      );
    } catch (again: unknown) {
      this.o.logger.error({ err: again, job: job.id }, "could not store the failure of a job whose record failed");
    }
  }

  /** Some online node not yet tried serves the job's model with every feature it needs. */
  private anyOtherNodeCanRun(job: LiveJob): boolean {
    for (const node of this.o.registry.all()) {
      if (!node.online || job.excludedNodes.has(node.id)) continue;
      const model = node.models.find((m) => m.id === job.model);
      if (model && offersAll(model, job.neededFeatures)) return true;
    }
    return false;
  }

  private jobOnNode(jobId: string, nodeId: string): LiveJob | undefined {
    const job = this.live.get(jobId);
    if (!job || job.finished || job.attempt?.nodeId !== nodeId) return undefined;
    return job;
  }
}

/** An attempt's answer as the spot checks take it: what it relayed, under the job's prompt. */
function deliveredAnswer(job: LiveJob, attempt: Attempt, how: Pick<DeliveredAnswer, "sampling" | "finishReason" | "claimedUsage">): DeliveredAnswer {
  return {
    jobId: job.id,
    nodeId: attempt.nodeId,
    model: job.model,
    messages: job.messages,
    ...(job.rawPrompt ? { rawPrompt: true } : {}),
    ...(job.alwaysCheck ? { alwaysCheck: true } : {}),
    ...(job.promptTokenIds ? { promptTokens: [...job.promptTokenIds] } : {}),
    outputTokens: attempt.relayedTokens ? [...attempt.relayedTokens] : undefined,
    ...(attempt.relayedLogprobs?.length ? { logprobs: [...attempt.relayedLogprobs] } : {}),
    ...how,
  };
}

function short(nodeId: string): string {
  return nodeId.slice(0, 12);
}


/** The attempt's own ids and log-probabilities, as the node's commitment counts them (every non-empty delta, in order). */
function noteRelayed(attempt: Attempt, part: TextDeltaPart): void {
  if (attempt.relayedTokens && part.tokens) attempt.relayedTokens.push(...part.tokens);
  else attempt.relayedTokens = undefined;
  if (attempt.relayedLogprobs && part.logprobs && part.tokens && part.logprobs.length === part.tokens.length) attempt.relayedLogprobs.push(...part.logprobs);
  else attempt.relayedLogprobs = undefined;
}
