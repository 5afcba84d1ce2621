import { TesseraError, decodeActivationFrame, type DecodedActivationFrame } from "@tessera/protocol";
import type { CheckPolicy } from "./check-policy.js";
import { stageVerdict } from "./stage-check-verdict.js";

/**
 * One stage of a finished sharded request, as the token loop saw it: which node ran which span, the frames it was
 * fed (one a step, in order) and the frames it handed on (the next stage's inputs, or the last stage's sampled
 * tokens). The arrays are the loop's own failover history: nothing is copied unless the stage is drawn.
 */
export interface StageRun {
  nodeId: string;
  start: number;
  end: number;
  inputs: readonly Uint8Array[];
  outputs: readonly Uint8Array[];
}

export interface FinishedStageRequest {
  requestId: string;
  /** The sharded model's file hash: references hold a span of this very file. */
  sha256: string;
  model: string;
  stages: readonly StageRun[];
}

/** A loaded stage some node holds (the sharding manager's view). */
export interface HeldSpan {
  nodeId: string;
  stageId: number;
  start: number;
  end: number;
}

/** How the checks reach the spans (the sharding manager implements it). */
export interface StageReplayPort {
  /** Loaded stages of the model with this hash holding exactly [start, end). */
  heldSpans(sha256: string, start: number, end: number): HeldSpan[];
  /** Nodes that offer the file with this hash (they could load any span of it). */
  offeringNodes(sha256: string): string[];
  /** Asks `nodeId` to load [start, end) of the file and resolves once it is loaded (rejects if the load fails). */
  loadSpan(sha256: string, start: number, end: number, nodeId: string): Promise<HeldSpan>;
  /**
   * Feeds `frames` in order to `stage` under a fresh request id (rewritten into each frame) and resolves with the raw
   * answers to each, in order; the stage's caches for that id are dropped afterwards. Rejects when the node answers
   * `stage.error`, goes away, or the replay is cancelled.
   */
  replay(stage: HeldSpan, frames: readonly Uint8Array[]): { requestId: string; answer: Promise<Uint8Array[]>; cancel(): void };
}

export type StageSkipReason = "no_reference" | "too_large" | "busy" | "bad_record";

export interface StageChecksDeps extends CheckPolicy<StageSkipReason> {
  replays: StageReplayPort;
  /** Bytes of saved frames one check may keep (inputs and outputs up to the sampled step); default 16 MiB. */
  maxBytes?: number;
  /** Checks in flight at once; more are skipped (`busy`); default 32. */
  maxPending?: number;
}

interface PendingStageCheck {
  requestId: string;
  model: string;
  nodeId: string;
  span: string;
  step: number;
  referenceId: string;
  deadline: number;
  cancel(): void;
}

export const DEFAULT_STAGE_CHECK_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Checks of single stages of sharded requests (trust/design.md, "Checking one stage"). After a request ends, each
 * stage of its path is drawn with its node's tier rate; for a drawn stage one step k is chosen uniformly, its saved
 * inputs of steps 0..k are replayed on a reference holding the same span of the same file (the KV cache needs them
 * all), and what the stage handed on at each of those steps is compared with the reference's answer. The verdict is
 * the stage's node's alone.
 */
export class StageChecks {
  private readonly pending = new Map<number, PendingStageCheck>();
  private nextId = 1;

  constructor(private readonly deps: StageChecksDeps) {}

  get inFlight(): number {
    return this.pending.size;
  }

  afterRequest(request: FinishedStageRequest): void {
    for (const stage of request.stages) {
      const rate = this.deps.rateOverride ?? this.deps.standing.checkRate(stage.nodeId);
      if (!(this.deps.random() < rate)) continue;
      this.check(request, stage);
    }
  }

  /** Abandons replays past their deadline. */
  tick(): void {
    const now = this.deps.clock.now();
    for (const [id, check] of this.pending) {
      if (now < check.deadline) continue;
      this.pending.delete(id);
      check.cancel();
      this.abandon(check, "the reference did not answer in time");
    }
  }

  private check(request: FinishedStageRequest, stage: StageRun): void {
    const steps = Math.min(stage.inputs.length, stage.outputs.length);
    if (steps === 0) return this.skip(request, stage, "bad_record");
    if (this.pending.size >= (this.deps.maxPending ?? 32)) return this.skip(request, stage, "busy");
    const reference = this.pickReference(request.sha256, stage);
    if (!reference) return this.skip(request, stage, "no_reference");
    // One step k, uniformly: the prefill or any decode step, so a stage honest on prompts but not on decoding is caught
    // too. Replaying step k needs the inputs of steps 0..k (the KV cache), and the reference answers each of them, so
    // all k + 1 answers are compared. Past the byte cap, the prefill alone.
    const maxBytes = this.deps.maxBytes ?? DEFAULT_STAGE_CHECK_MAX_BYTES;
    let step = Math.floor(this.deps.random() * steps);
    if (bytesUpTo(stage, step) > maxBytes) step = 0;
    if (bytesUpTo(stage, step) > maxBytes) return this.skip(request, stage, "too_large");
    // Copies, taken now: the saved frames are what this check keeps (the replay re-encodes them and changes nothing).
    const frames = stage.inputs.slice(0, step + 1).map((f) => f.slice());
    let inputs: DecodedActivationFrame[];
    let claimed: DecodedActivationFrame[];
    try {
      inputs = frames.map((f) => decodeActivationFrame(f));
      claimed = stage.outputs.slice(0, step + 1).map((f) => decodeActivationFrame(f.slice()));
    } catch {
      return this.skip(request, stage, "bad_record");
    }
    const id = this.nextId++;
    let cancelled = false;
    let cancelReplay = (): void => void (cancelled = true);
    const pending: PendingStageCheck = {
      requestId: request.requestId,
      model: request.model,
      nodeId: stage.nodeId,
      span: `[${stage.start}, ${stage.end})`,
      step,
      referenceId: reference.nodeId,
      deadline: this.deps.clock.now() + this.deps.timeoutMs,
      cancel: () => cancelReplay(),
    };
    this.pending.set(id, pending);
    const start = (span: HeldSpan): Promise<Uint8Array[]> => {
      const replay = this.deps.replays.replay(span, frames);
      cancelReplay = replay.cancel;
      return replay.answer;
    };
    const answer = "stageId" in reference
      ? start(reference)
      : this.deps.replays.loadSpan(request.sha256, stage.start, stage.end, reference.nodeId).then((span) => {
          if (cancelled) throw new TesseraError("cancelled", "replay cancelled");
          return start(span);
        });
    answer.then(
      (raw) => {
        if (!this.pending.delete(id)) return;
        this.judge(pending, inputs, claimed, raw);
      },
      (err: unknown) => {
        if (!this.pending.delete(id)) return;
        this.abandon(pending, `the replay failed: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
  }

  private judge(check: PendingStageCheck, inputs: DecodedActivationFrame[], claimed: DecodedActivationFrame[], raw: Uint8Array[]): void {
    let verdict: { passed: boolean; failures: string[]; relativeError?: number };
    try {
      if (raw.length !== claimed.length) throw new TesseraError("bad_request", `replay answer: ${raw.length} answers to ${claimed.length} frames`);
      const steps = claimed.map((c, k) => stageVerdict({ input: inputs[k]!, claimed: c, replayed: decodeActivationFrame(raw[k]!) }));
      const errors = steps.flatMap((v) => (v.relativeError === undefined ? [] : [v.relativeError]));
      verdict = {
        passed: steps.every((v) => v.passed),
        failures: steps.flatMap((v, k) => v.failures.map((f) => `step ${k}: ${f}`)),
        ...(errors.length > 0 ? { relativeError: Math.max(...errors) } : {}),
      };
    } catch (err) {
      // The reference's answer is malformed or of the wrong shape: it says nothing about the checked node.
      const why = err instanceof TesseraError ? `[${err.code}] ${err.message}` : String(err);
      return this.abandon(check, `the reference's answer cannot be compared: ${why}`);
    }
    this.deps.standing.recordCheck(check.nodeId, { passed: verdict.passed });
    this.deps.metrics?.checked(verdict.passed ? "passed" : "failed");
    const fields = {
      job: check.requestId, model: check.model, node: check.nodeId.slice(0, 12), layers: check.span, steps: check.step + 1,
      reference: check.referenceId.slice(0, 12), ...(verdict.relativeError === undefined ? {} : { relative_error: verdict.relativeError }),
    };
    if (verdict.passed) this.deps.logger.info(fields, "stage check passed");
    else this.deps.logger.warn({ ...fields, failures: verdict.failures }, "stage check failed");
  }

  /**
   * A reference runs on a node of another operator that is online, not draining, not quarantined, and is trusted or
   * named by the owner (as for answers: an untrusted reference that lied would charge an honest node), and holds the
   * same span of the same file: a stage already loaded, or else one such node that offers the file, which is then
   * asked to load the span (placement's chains need not cut the layers alike, so an exact replica may not exist).
   */
  private pickReference(sha256: string, stage: StageRun): HeldSpan | { nodeId: string } | undefined {
    const { registry, standing, namedReferences } = this.deps;
    const operator = registry.get(stage.nodeId)?.operatorId ?? stage.nodeId;
    const eligible = (nodeId: string): boolean => {
      if (nodeId === stage.nodeId) return false;
      const ref = registry.get(nodeId);
      if (!ref || ref.operatorId === operator || !ref.online || ref.draining || !this.deps.messenger.reachable(ref.id)) return false;
      if (standing.isQuarantined(ref.id)) return false;
      return namedReferences.has(ref.id) || namedReferences.has(ref.operatorId) || standing.tier(ref.id) === "trusted";
    };
    const held = this.deps.replays.heldSpans(sha256, stage.start, stage.end).filter((h) => eligible(h.nodeId));
    if (held.length > 0) return held[Math.floor(this.deps.random() * held.length)];
    const offering = this.deps.replays.offeringNodes(sha256).filter(eligible);
    if (offering.length > 0) return { nodeId: offering[Math.floor(this.deps.random() * offering.length)]! };
    return undefined;
  }

  private skip(request: FinishedStageRequest, stage: StageRun, reason: StageSkipReason): void {
    this.deps.metrics?.skipped(reason);
    this.deps.logger.debug({ job: request.requestId, node: stage.nodeId.slice(0, 12), layers: `[${stage.start}, ${stage.end})`, reason }, "stage check drawn but skipped");
  }

  private abandon(check: PendingStageCheck, why: string): void {
    this.deps.metrics?.checked("abandoned");
    this.deps.logger.warn({ job: check.requestId, node: check.nodeId.slice(0, 12), layers: check.span, reference: check.referenceId.slice(0, 12), why }, "stage check abandoned");
  }
}

function bytesUpTo(stage: StageRun, step: number): number {
  let n = 0;
  for (let k = 0; k <= step; k++) n += stage.inputs[k]!.byteLength + stage.outputs[k]!.byteLength;
  return n;
}
