/**
 * One request on a sharded model: tokenize on the stage-0 node, run each step stage to stage through the
 * coordinator (binary frames relayed unchanged but for the stage id), sample from the last stage's logits, stream
 * text deltas. Keeps each stage's input frames so that a lost stage is rebuilt on a replica by replaying them.
 */
import {
  TesseraError,
  callableTools,
  decodeActivationFrame,
  encodeActivationFrame,
  setActivationFrameSampling,
  setActivationFrameStage,
  ACTIVATION_FLAG_SAMPLED,
  type DecodedActivationFrame,
  type ErrorCode,
  type StageCoordinatorMessage,
  type StageTokenized,
  type StreamPart,
} from "@tessera/protocol";
import type { Assignment } from "../workers/worker.js";
import { Detokenizer, Vocab } from "./detokenizer.js";
import { RequestTiming } from "./request-timing.js";
import type { StageState, ShardedModel } from "./sharded-model.js";

/** One stage of a finished request: its node and span, the frames it was fed and those it handed on, a step each. */
export interface StageRecord {
  nodeId: string;
  start: number;
  end: number;
  inputs: readonly Uint8Array[];
  outputs: readonly Uint8Array[];
}

/** What the loop needs from the sharding manager. */
export interface TokenLoopHost {
  send(nodeId: string, message: StageCoordinatorMessage): boolean;
  sendBinary(nodeId: string, data: Uint8Array): boolean;
  rttMs(nodeId: string): number;
  /** Waits until the model's loaded stages cover every layer (or fails with the missing layers). */
  pathFor(model: ShardedModel, exclude: ReadonlySet<string>): Promise<StageState[]>;
  /** A loaded stage holding exactly [start, end) on a node not excluded: an existing replica or a fresh load. */
  replicaFor(model: ShardedModel, start: number, end: number, exclude: ReadonlySet<string>): Promise<StageState>;
  emit(part: StreamPart): void;
  accept(): void;
  abort(code: ErrorCode, message: string): void;
  now(): number;
  log(message: string, fields?: object): void;
  /**
   * The request finished on one unchanged path: each stage's inputs and outputs, for stage checks. Not called after a
   * failover (a replaced span's steps came from two nodes) or a failure.
   */
  finished?(stages: StageRecord[]): void;
}

/** The node holding a stage went away, or the stage failed this request: re-route the span. */
class StageLost extends Error {}

/** Who takes the answer to a frame sent to a stage. `rttMs`: from the send to the answer's arrival at the session. */
interface AnswerHandler {
  onAnswer(data: Uint8Array, frame: DecodedActivationFrame, rttMs: number): void;
  onLost(err: Error): void;
}

/** The one frame a request has in flight: which answer is awaited (`receivedAt`: arrival at the session handler). */
interface Pending {
  nodeId: string;
  stageId: number;
  seq: number;
  onAnswer(data: Uint8Array, frame: DecodedActivationFrame, receivedAt: number): void;
  onLost(err: Error): void;
}

const MS_ALPHA = 0.3;

/** The request's sampling parameters and the PRNG state the next sampling step starts from. */
interface SamplingState {
  temperature: number;
  topP: number;
  rngState: number;
}

export class TokenLoop {
  private path: StageState[] = [];
  /** history[i]: the frames fed to path[i] so far, in order (its span's input activations). */
  private history: Uint8Array[][] = [];
  /** The last stage's answers (sampled tokens), one a step: what it handed on, for stage checks. */
  private sampled: Uint8Array[] = [];
  /** A span was moved to a replica during this request. */
  private failedOver = false;
  private pending: Pending | undefined;
  private tokenized: { resolve(m: StageTokenized): void; reject(err: Error): void } | undefined;
  private readonly dead = new Set<string>();
  private readonly touched = new Set<string>();
  private cancelled = false;
  private seq = 0;
  /** Where the decode time goes (logged when the request ends; the pipeline bench reads it). */
  readonly timing = new RequestTiming();

  constructor(
    readonly requestId: string,
    private readonly model: ShardedModel,
    private readonly job: Assignment,
    private readonly host: TokenLoopHost,
  ) {}

  async run(): Promise<void> {
    try {
      await this.generate();
      if (!this.failedOver && !this.cancelled) {
        // The answer is delivered: whatever the stage checks do with the record must not turn it into a failure.
        try {
          this.host.finished?.(this.records());
        } catch (err) {
          this.host.log("stage checks could not take the request", { job: this.requestId, err: err instanceof Error ? err.message : String(err) });
        }
      }
    } catch (err) {
      if (this.cancelled) return;
      const e = err instanceof TesseraError ? err : new TesseraError("internal_error", err instanceof Error ? err.message : String(err));
      this.host.log("sharded request failed", { job: this.requestId, code: e.code, message: e.message });
      this.host.abort(e.code, e.message);
    } finally {
      const timing = this.timing.summary();
      if (timing) this.host.log("sharded request timing", { job: this.requestId, timing });
      for (const nodeId of this.touched) this.host.send(nodeId, { type: "stage.drop", request_id: this.requestId });
    }
  }

  /** Stages this request is using (the manager never unloads them under it). */
  stageIds(): number[] {
    return this.path.map((s) => s.stageId);
  }

  cancel(): void {
    this.cancelled = true;
    this.pending?.onLost(new TesseraError("cancelled", "cancelled"));
    this.tokenized?.reject(new TesseraError("cancelled", "cancelled"));
  }

  onNodeLost(nodeId: string): void {
    this.dead.add(nodeId);
    if (this.pending?.nodeId === nodeId) this.pending.onLost(new StageLost(`stage node ${nodeId.slice(0, 12)} lost`));
    if (this.tokenized && this.path[0]?.nodeId === nodeId) this.tokenized.reject(new StageLost("tokenizing node lost"));
  }

  onStageError(nodeId: string, code: string, message: string): void {
    this.host.log("stage reported an error", { job: this.requestId, node: nodeId.slice(0, 12), code, message });
    if (this.tokenized && this.path[0]?.nodeId === nodeId) {
      this.tokenized.reject(new TesseraError(code === "bad_request" ? "bad_request" : "internal_error", message));
      return;
    }
    if (this.pending?.nodeId === nodeId) {
      this.dead.add(nodeId);
      this.pending.onLost(new StageLost(`stage on ${nodeId.slice(0, 12)} failed: [${code}] ${message}`));
    }
  }

  onTokenized(nodeId: string, message: StageTokenized): void {
    if (this.path[0]?.nodeId === nodeId) this.tokenized?.resolve(message);
  }

  /** `receivedAt`: when the session handed the frame over, before decoding (timing). */
  onFrame(nodeId: string, data: Uint8Array, frame: DecodedActivationFrame, receivedAt: number): void {
    const p = this.pending;
    if (!p || p.nodeId !== nodeId || p.stageId !== frame.stageId || p.seq !== frame.seq) return; // late answer of a dead path
    p.onAnswer(data, frame, receivedAt);
  }

  private async generate(): Promise<void> {
    // The stages sample without a grammar: a JSON format or callable tools are refused, never ignored.
    const constrained = this.job.sampling.response_format ? "response_format" : callableTools(this.job.sampling.tools, this.job.sampling.tool_choice).tools.length > 0 ? "tools" : undefined;
    if (constrained) throw new TesseraError("bad_request", `${constrained} is not supported on sharded models yet`);
    this.setPath(await this.host.pathFor(this.model, this.dead));
    this.host.log("sharded request routed", { job: this.requestId, stages: this.path.map((s) => `${s.nodeId.slice(0, 8)}[${s.start},${s.end})`).join(" → ") });
    const tok = await this.tokenize();
    this.host.accept();
    const prefix = this.job.assistant_prefix_tokens ?? [];
    const prompt = [...tok.tokens, ...prefix];
    const eog = new Set(tok.eog_tokens);
    const detok = new Detokenizer(this.model.vocab!);
    // The last stage samples (greedy, or temperature/top-p with the seeded PRNG of the stage runtime's `Sampler`)
    // and answers with the token: 4 bytes instead of the 32 000 logits. The PRNG state lives here and travels with
    // each step, so sampling needs no per-request state on the node and a replayed replica samples identically.
    const sampling = { temperature: this.job.sampling.temperature ?? 0, topP: this.job.sampling.top_p ?? 1, rngState: (this.job.sampling.seed ?? 0) >>> 0 };
    if (!(sampling.temperature >= 0 && Number.isFinite(sampling.temperature))) throw new TesseraError("bad_request", `temperature must be a finite number >= 0, got ${sampling.temperature}`);
    if (!(sampling.topP > 0 && sampling.topP <= 1)) throw new TesseraError("bad_request", `top_p must be in (0, 1], got ${sampling.topP}`);
    const budget = Math.max(0, this.job.sampling.max_tokens - prefix.length);
    let completion = 0;
    let finish: "stop" | "length" = "length";
    let token = await this.step(Int32Array.from(prompt), Int32Array.from(prompt, (_, i) => i), sampling);
    while (completion < budget) {
      if (eog.has(token)) {
        finish = "stop";
        break;
      }
      completion++;
      // The next step's first frame goes out (synchronously, inside `step`) before this token is detokenized and
      // emitted, so the stream's bookkeeping overlaps the stages' compute instead of adding to every token.
      const next = completion < budget ? this.step(Int32Array.of(token), Int32Array.of(prompt.length + completion - 1), sampling) : undefined;
      const e0 = this.host.now();
      const text = detok.push(token);
      this.host.emit({ type: "text-delta", text, tokens: [token] });
      this.timing.emit(this.host.now() - e0);
      if (!next) break;
      token = await next;
    }
    const tail = detok.flush();
    if (tail) this.host.emit({ type: "text-delta", text: tail, tokens: [] });
    this.host.emit({ type: "usage", prompt_tokens: prompt.length, completion_tokens: completion });
    this.host.emit({ type: "finish", reason: finish });
  }

  private records(): StageRecord[] {
    return this.path.map((s, i) => ({
      nodeId: s.nodeId, start: s.start, end: s.end, inputs: this.history[i]!, outputs: i + 1 < this.path.length ? this.history[i + 1]! : this.sampled,
    }));
  }

  private setPath(path: StageState[]): void {
    this.path = path;
    this.history = path.map(() => []);
    this.sampled = [];
    this.timing.setPath(path.map((s) => `[${s.start},${s.end})`));
  }

  private async tokenize(): Promise<StageTokenized> {
    for (;;) {
      const first = this.path[0]!;
      const wait = new Promise<StageTokenized>((resolve, reject) => (this.tokenized = { resolve, reject }));
      this.host.send(first.nodeId, { type: "stage.tokenize", stage_id: first.stageId, request_id: this.requestId, messages: this.job.messages, want_vocab: !this.model.vocab });
      try {
        const m = await wait;
        if (m.vocab && !this.model.vocab) this.model.vocab = new Vocab(m.vocab);
        if (!this.model.vocab) throw new TesseraError("internal_error", "the stage-0 node sent no vocabulary");
        return m;
      } catch (err) {
        if (!(err instanceof StageLost)) throw err;
        this.setPath(await this.host.pathFor(this.model, this.dead));
      } finally {
        this.tokenized = undefined;
      }
    }
  }

  /**
   * One step through every stage; returns the token the last stage sampled and keeps its advanced PRNG state. The
   * relay from stage to stage happens in `onFrame`, synchronously as each answer arrives (no promise turn per hop:
   * on a pipeline each hop's latency is paid once per token per stage). A lost stage ends the relay there; its span
   * is moved to a replica and the step goes on from it.
   */
  private async step(tokens: Int32Array, positions: Int32Array, sampling: SamplingState): Promise<number> {
    const seq = this.seq++;
    this.timing.stepStart(this.host.now(), tokens.length === 1 && seq > 0);
    let frame = encodeActivationFrame({ requestId: this.requestId, stageId: this.path[0]!.stageId, seq, rows: tokens.length, cols: 1, positions, dtype: "i32", data: tokens });
    let from = 0;
    for (;;) {
      const outcome = await this.relay(from, frame, seq, sampling);
      if (outcome.answer) {
        const decoded = outcome.answer;
        if (!(decoded.flags & ACTIVATION_FLAG_SAMPLED)) throw new TesseraError("internal_error", "the last stage answered without a sampled token");
        sampling.rngState = decoded.rngState;
        return decoded.data[0]!;
      }
      // The frame in flight to the lost stage is the last of its history: replace() replays the ones before it, and
      // relay() records it again as it sends it to the replica.
      await this.replace(outcome.lost);
      this.history[outcome.lost]!.pop();
      from = outcome.lost;
      frame = outcome.frame;
    }
  }

  /**
   * Sends `frame` to stage `from` and relays each answer on to the next stage as it arrives. Resolves with the last
   * stage's answer, or with the index and input frame of a stage that was lost on the way.
   */
  private relay(from: number, frame: Uint8Array, seq: number, sampling: SamplingState): Promise<{ answer: DecodedActivationFrame; lost?: undefined } | { answer?: undefined; lost: number; frame: Uint8Array }> {
    return new Promise((resolve, reject) => {
      let index = from;
      let input = frame;
      // Runs inside the session's message handler for every hop after the first: it must not throw.
      const forward = (): void => {
        if (this.cancelled) return reject(new TesseraError("cancelled", "cancelled"));
        const stage = this.path[index]!;
        setActivationFrameSampling(input, index === this.path.length - 1 ? sampling : undefined);
        this.history[index]!.push(input);
        const sent = this.send(stage, input, seq, {
          onAnswer: (data, decoded, rttMs) => {
            this.timing.hop(index, rttMs, decoded.nodeUs, decoded.computeUs);
            if (this.history[index]!.length > 1) {
              // The node's own measurement of the forward: the session RTT (pings) is not part of it.
              const compute = decoded.computeUs / 1000 / (stage.end - stage.start);
              stage.msPerLayer += MS_ALPHA * (compute - stage.msPerLayer);
            }
            if (index === this.path.length - 1) {
              this.sampled.push(data);
              return resolve({ answer: decoded });
            }
            index++;
            input = data;
            forward();
          },
          onLost: (err) => (err instanceof StageLost ? resolve({ lost: index, frame: input }) : reject(err)),
        });
        if (!sent) resolve({ lost: index, frame: input });
      };
      forward();
    });
  }

  /** Re-routes span i to a replica and replays every earlier input of the span, so its KV cache is rebuilt. */
  private async replace(i: number): Promise<void> {
    const lost = this.path[i]!;
    this.dead.add(lost.nodeId);
    this.failedOver = true;
    const replica = await this.host.replicaFor(this.model, lost.start, lost.end, this.dead);
    this.host.log("stage failover: replaying the span's inputs on a replica", {
      job: this.requestId, layers: `[${lost.start}, ${lost.end})`, from: lost.nodeId.slice(0, 12), to: replica.nodeId.slice(0, 12), frames: this.history[i]!.length - 1,
    });
    this.path[i] = replica;
    const saved = this.history[i]!;
    for (let k = 0; k < saved.length - 1; k++) {
      const f = saved[k]!;
      await this.exchange(replica, f, new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(12, true));
    }
  }

  /**
   * Sends one frame to a stage; `onAnswer` gets its answer, `onLost` a failure (the node lost, the stage failed,
   * the request cancelled). Returns false, sending nothing, when the stage's node is known dead or has no session.
   */
  private send(stage: StageState, frame: Uint8Array, seq: number, on: AnswerHandler): boolean {
    if (this.dead.has(stage.nodeId)) return false;
    setActivationFrameStage(frame, stage.stageId);
    const sentAt = this.host.now();
    this.pending = {
      nodeId: stage.nodeId,
      stageId: stage.stageId,
      seq,
      onAnswer: (data, decoded, receivedAt) => {
        this.pending = undefined;
        on.onAnswer(data, decoded, receivedAt - sentAt);
      },
      onLost: (err) => {
        this.pending = undefined;
        on.onLost(err);
      },
    };
    this.touched.add(stage.nodeId);
    if (this.host.sendBinary(stage.nodeId, frame)) return true;
    this.pending = undefined;
    return false;
  }

  /** One frame to a stage and its answer (the replay of a span's inputs on a replica). */
  private exchange(stage: StageState, frame: Uint8Array, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.cancelled) return reject(new TesseraError("cancelled", "cancelled"));
      if (!this.send(stage, frame, seq, { onAnswer: () => resolve(), onLost: reject })) reject(new StageLost("stage node is gone"));
    });
  }
}
