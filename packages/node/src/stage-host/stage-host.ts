/**
 * The node side of sharded inference: holds the layer spans the coordinator asked this node to load, runs
 * `Span.forward` on each binary activation frame and answers with a binary frame, tokenizes prompts for stage 0,
 * and drops per-request KV caches on `stage.drop`. Loads, unloads, drops and frames run one at a time in arrival
 * order (the session is one ordered stream) through one queue, so a request's steps never interleave and a drop never
 * overtakes the frame before it. A ggml span computes in its worker thread, so the event loop keeps serving pings
 * and other jobs meanwhile; a WebAssembly span computes on the event loop, as it always has.
 */
import { freemem } from "node:os";
import {
  TesseraError,
  ACTIVATION_FLAG_SAMPLE,
  ACTIVATION_FLAG_SAMPLED,
  answerActivationFrameInPlace,
  decodeActivationFrame,
  encodeActivationFrame,
  type DecodedActivationFrame,
  type OfferRefused,
  type StageCoordinatorMessage,
  type StageNodeMessage,
  type StageTokenize,
} from "@tessera/protocol";
import type { NodeLogger } from "../logger.js";
import { F16_TO_F32 as F16 } from "../stage/f16.js";
import { openGguf } from "../stage/gguf-reader.js";
import { Sampler, largestMagnitude } from "../stage/sampler.js";
import { measureMsPerLayer, probeMsPerLayer, spanBytesPerLayer } from "../stage/span-cost.js";
import { loadSpan, resolveStageRuntime, type Span } from "../stage/span-runtime.js";
import type { StageBackend } from "../stage/stage-backend.js";
import { setStageThreads } from "../stage/wasm-matvec.js";
import { offerRefusalRecord, type StageOfferRefusal } from "./offer-refusal.js";
import { loadPromptTokenizer, type PromptTokenizer } from "./prompt-tokenizer.js";
import { describeShardFile, type ShardFile } from "./shard-file.js";
import { vocabPieces } from "./vocab-pieces.js";

export type TextSender = (frame: string) => void;
export type BinarySender = (frame: Uint8Array) => void;

export interface StageHostOptions {
  /** GGUF file this node offers to hold spans of. */
  modelPath: string;
  logger: NodeLogger;
  /** Free memory reported in the offer (default: the OS's free memory). */
  freeMemoryBytes?: () => number;
  /** CPU threads the spans' matrix products use (default 1; see setStageThreads). */
  threads?: number;
  /** Runtime of the spans (default wasm; see loadSpan). */
  backend?: StageBackend;
  /** Where `tessera gpu setup` installed the GPU build (`<data dir>/gpu-runtime`), for the GPU backends. */
  gpuRuntimeDir?: string;
  /**
   * Time a few layers on the backend at start, so the offer says this node's speed before any span is placed on it
   * (default true; see span-cost.ts). Without it the offer carries no ms_per_layer and placement assumes the default.
   */
  probeSpeed?: boolean;
  now?: () => number;
  /** Wall-clock time, ms since the epoch, for when a refusal was heard (default Date.now). */
  wallNow?: () => number;
  /**
   * Keeps the coordinator's refusal of the offer where the operator looks (the daemon: `<data>/stage-offer-refused.json`
   * for `tessera status`); called with undefined at start, which clears one a previous daemon left. A failure is logged.
   */
  recordRefusal?: (refusal: StageOfferRefusal | undefined) => void;
  /**
   * Tests only (`TESSERA_TEST_STAGE_PERTURB`, config.ts): perturb every answer by this many times its RMS, and claim
   * to compute in no time (so routing prefers this node, as it would a cheater answering garbage fast): a lying stage
   * for the stage checks' tests. 0 (default): honest.
   */
  perturb?: number;
}

/** What a span of the file costs on this node's backend, as the offer states it (absent: the backend cannot run). */
interface SpanCost {
  runtime: string;
  bytesPerLayer: number;
  msPerLayer: number | undefined;
}

export class StageHost {
  private shard: ShardFile | undefined;
  private cost: SpanCost | undefined;
  private readonly stages = new Map<number, Span>();
  private readonly samplers = new Map<string, Sampler>();
  private tokenizer: Promise<PromptTokenizer> | undefined;
  private refusal: StageOfferRefusal | undefined;
  private readonly now: () => number;
  /** The tail of the ordered work (loads, unloads, drops, frames); its tasks never reject. */
  private queue: Promise<void> = Promise.resolve();

  private constructor(private readonly o: StageHostOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** Reads and hashes the file (a bad file fails here, at daemon start). */
  static async create(o: StageHostOptions): Promise<StageHost> {
    const host = new StageHost(o);
    host.record(undefined);
    host.shard = await describeShardFile(o.modelPath);
    setStageThreads(o.threads ?? 1);
    host.cost = await host.measureCost();
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    const cost = host.cost
      ? `, on ${host.cost.runtime}: ${mib(host.cost.bytesPerLayer)} MiB/layer with a full-context cache${host.cost.msPerLayer === undefined ? "" : `, ${host.cost.msPerLayer.toFixed(3)} ms/layer`}`
      : "";
    o.logger.info(`stage host: offering ${host.shard.model} (${host.shard.layerCount} layers, ${mib(host.shard.bytesPerLayer)} MiB/layer in the file${cost}, sha256 ${host.shard.sha256.slice(0, 12)}…, ${o.threads ?? 1} thread(s))`);
    return host;
  }

  /**
   * The memory a layer takes on the backend spans will run on, and the per-layer step time a probe of a few layers
   * measures there. A backend that cannot run here leaves both out of the offer (the load will say why); a probe
   * that fails leaves out the time.
   */
  private async measureCost(): Promise<SpanCost | undefined> {
    const o = this.o;
    const backend = o.backend ?? "wasm";
    const choice = resolveStageRuntime(backend, undefined, { gpuRuntimeDir: o.gpuRuntimeDir });
    if (choice.runtime === undefined) {
      o.logger.warn(`stage host: ${choice.detail}; the offer says nothing of this node's backend`);
      return undefined;
    }
    const bytesPerLayer = spanBytesPerLayer(choice, o.modelPath);
    if (o.probeSpeed === false) return { runtime: choice.runtime, bytesPerLayer, msPerLayer: undefined };
    try {
      const probe = await probeMsPerLayer({ path: o.modelPath, backend, threads: o.threads ?? 1, gpuRuntimeDir: o.gpuRuntimeDir });
      return { runtime: probe.runtime, bytesPerLayer, msPerLayer: probe.msPerLayer };
    } catch (err) {
      o.logger.warn(`stage host: timing layers on ${choice.runtime} failed (${(err as Error).message}); the offer says nothing of this node's speed`);
      return { runtime: choice.runtime, bytesPerLayer, msPerLayer: undefined };
    }
  }

  get file(): ShardFile {
    return this.shard!;
  }

  /** Spans loaded now, by stage id. */
  loadedStages(): Array<{ stageId: number; start: number; end: number }> {
    return [...this.stages].map(([stageId, s]) => ({ stageId, start: s.start, end: s.end }));
  }

  /** The coordinator's last refusal of this node's offer, since the daemon started (undefined: none heard). */
  get offerRefusal(): StageOfferRefusal | undefined {
    return this.refusal;
  }

  /**
   * The coordinator refused the offer (`offer.refused`): no span of the file will be placed here. Logged as an error
   * with what the operator can do, and recorded (`offerRefusal`, `recordRefusal`). A refusal of a file this node does
   * not offer (a confused or hostile coordinator) is logged and changes nothing. Never throws.
   */
  onOfferRefused(m: OfferRefused): void {
    const o = this.o;
    if (m.sha256 !== this.file.sha256) {
      o.logger.warn(`stage host: the coordinator refused an offer of ${m.sha256.slice(0, 12)}…, a file this node does not offer (it offers ${this.file.sha256.slice(0, 12)}…); ignored`);
      return;
    }
    const refusal = offerRefusalRecord(m, new Date((o.wallNow ?? Date.now)()));
    this.refusal = refusal;
    const field = refusal.param === undefined ? "" : `, ${refusal.param}`;
    o.logger.error(
      `stage host: the coordinator refused this node's offer of ${this.file.model} (${refusal.code}${field}): ${refusal.message}. ` +
        `No layer span of it will be placed on this node; ${refusal.advice}, then restart the daemon`,
    );
    this.record(refusal);
  }

  private record(refusal: StageOfferRefusal | undefined): void {
    try {
      this.o.recordRefusal?.(refusal);
    } catch (err) {
      this.o.logger.warn(`stage host: could not record the offer's refusal for \`tessera status\` (${(err as Error).message})`);
    }
  }

  /** The offer sent each time the session opens. */
  offer(): StageNodeMessage {
    const f = this.file;
    return {
      type: "stage.offer",
      shards: [{
        model: f.model,
        sha256: f.sha256,
        layer_count: f.layerCount,
        bytes_per_layer: f.bytesPerLayer,
        free_memory_bytes: Math.floor(this.o.freeMemoryBytes?.() ?? freemem()),
        ...(this.cost ? { span_bytes_per_layer: this.cost.bytesPerLayer } : {}),
        ...(this.cost?.msPerLayer !== undefined ? { ms_per_layer: this.cost.msPerLayer } : {}),
      }],
    };
  }

  /**
   * Handles a JSON stage message. Never rejects: failures are answered with `stage.error`. The promise settles when
   * the message has been handled (tests await it; the daemon need not).
   */
  onMessage(message: StageCoordinatorMessage, send: TextSender): Promise<void> {
    const reply = (m: StageNodeMessage) => send(JSON.stringify(m));
    const fail = (err: unknown) => {
      const ids = "stage_id" in message ? { stage_id: message.stage_id } : {};
      reply(errorMessage(err, { ...ids, ...("request_id" in message ? { request_id: message.request_id } : {}) }));
    };
    switch (message.type) {
      case "stage.load":
        return this.enqueue(async () => reply(await this.load(message.stage_id, message.sha256, message.start, message.end)), fail);
      case "stage.unload":
        return this.enqueue(async () => {
          const stage = this.stages.get(message.stage_id);
          this.stages.delete(message.stage_id);
          await stage?.close();
        }, fail);
      case "stage.drop":
        return this.enqueue(() => {
          for (const s of this.stages.values()) s.dropRequest(message.request_id);
        }, fail);
      case "stage.tokenize":
        return this.tokenize(message).then(reply, fail);
    }
  }

  /** Runs `task` after the work queued before it; a failure goes to `fail`, so the queue never rejects. */
  private enqueue(task: () => Promise<void> | void, fail: (err: unknown) => void): Promise<void> {
    const run = async (): Promise<void> => {
      try {
        await task();
      } catch (err) {
        fail(err);
      }
    };
    this.queue = this.queue.then(run);
    return this.queue;
  }

  /**
   * Runs one activation frame through its stage; answers with the output frame or a `stage.error`. The answer carries
   * the node's own timing (receipt to send, and `Stage.forward` alone) so the coordinator can tell compute from
   * transport in the same run.
   */
  onBinary(data: Uint8Array, sendBinary: BinarySender, send: TextSender): Promise<void> {
    const t0 = this.now();
    let frame: DecodedActivationFrame | undefined;
    return this.enqueue(
      async () => {
        frame = decodeActivationFrame(data);
        const out = await this.forward(frame, data);
        new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(24, Math.round((this.now() - t0) * 1000), true);
        sendBinary(out);
      },
      (err) => send(JSON.stringify(errorMessage(err, frame ? { stage_id: frame.stageId, request_id: frame.requestId } : {}))),
    );
  }

  /**
   * Forward one frame. A `SAMPLE` frame on the last stage is answered with the sampled token (an I32 frame,
   * `SAMPLED`, the advanced PRNG state, the token's logit and the row's largest |logit|) instead of the 32 000-value
   * logits row. A middle stage, whose output has its
   * input's shape, writes its answer over `received` (the frame's own bytes, when given) instead of encoding a new one;
   * otherwise the answer is a fresh buffer (the stage returns a view of its own scratch).
   */
  async forward(frame: DecodedActivationFrame, received?: Uint8Array): Promise<Uint8Array> {
    const stage = this.stages.get(frame.stageId);
    if (!stage) throw new TesseraError("bad_request", `stage ${frame.stageId} is not loaded on this node`);
    let input: Float32Array | Int32Array;
    if (stage.isFirst) {
      if (frame.dtype !== "i32") throw new TesseraError("bad_request", "the first stage takes token ids (i32 frames)");
      input = frame.data as Int32Array;
    } else if (frame.dtype === "f32") {
      input = frame.data as Float32Array;
    } else if (frame.dtype === "f16") {
      input = halfToFloat(frame.data as Uint16Array);
    } else {
      throw new TesseraError("bad_request", `stage ${frame.stageId} takes hidden states, not token ids`);
    }
    const t0 = this.now();
    const out = await stage.forward(frame.requestId, input, frame.positions);
    if (this.o.perturb) perturbRows(out, stage.isLast ? out.length : stage.hiddenSize, this.o.perturb, frame.seq);
    const computeUs = this.o.perturb ? 0 : (this.now() - t0) * 1000;
    const header = { requestId: frame.requestId, stageId: frame.stageId, seq: frame.seq, computeUs };
    if (stage.isLast && (frame.flags ?? 0) & ACTIVATION_FLAG_SAMPLE) {
      const sampler = this.sampler(frame.temperature ?? 0, frame.topP ?? 1);
      sampler.rngState = frame.rngState ?? 0;
      const token = sampler.sample(out);
      const position = Int32Array.of(frame.positions[frame.rows - 1]!);
      return encodeActivationFrame({
        ...header, rows: 1, cols: 1, positions: position, dtype: "i32", data: Int32Array.of(token), flags: ACTIVATION_FLAG_SAMPLED, rngState: sampler.rngState,
        tokenLogit: out[token]!, logitScale: largestMagnitude(out),
      });
    }
    if (received && !stage.isFirst && !stage.isLast && frame.dtype === "f32") return answerActivationFrameInPlace(received, frame, out, computeUs);
    const rows = stage.isLast ? 1 : frame.rows;
    const cols = out.length / rows;
    const last = stage.isLast ? new Int32Array([frame.positions[frame.rows - 1]!]) : frame.positions;
    return encodeActivationFrame({ ...header, rows, cols, positions: last, dtype: "f32", data: out });
  }

  /** One sampler per (temperature, top-p), its buffers reused; the PRNG state comes with each frame. */
  private sampler(temperature: number, topP: number): Sampler {
    const key = `${temperature}/${topP}`;
    let s = this.samplers.get(key);
    if (!s) {
      if (this.samplers.size >= 16) this.samplers.clear();
      s = new Sampler({ temperature, topP });
      this.samplers.set(key, s);
    }
    return s;
  }

  private async load(stageId: number, sha256: string, start: number, end: number): Promise<StageNodeMessage> {
    const f = this.file;
    if (sha256 !== f.sha256) throw new TesseraError("not_found", `this node has no model file with sha256 ${sha256}`);
    const t0 = this.now();
    const { span: stage, runtime, detail } = await loadSpan({
      path: f.path, start, end, backend: this.o.backend ?? "wasm", threads: this.o.threads ?? 1, gpuRuntimeDir: this.o.gpuRuntimeDir, warn: (message) => this.o.logger.warn(`stage host: ${message}`),
    });
    const loadMs = this.now() - t0;
    let msPerLayer: number;
    try {
      // Warm-up: a few tokens through the span measure the per-layer time the coordinator routes by.
      msPerLayer = this.o.perturb ? 0 : await measureMsPerLayer(stage, this.now);
    } catch (err) {
      await stage.close();
      throw err;
    }
    const previous = this.stages.get(stageId);
    this.stages.set(stageId, stage);
    await previous?.close();
    this.o.logger.info(`stage ${stageId}: layers [${start}, ${end}) of ${f.model} loaded in ${Math.round(loadMs)} ms (${msPerLayer.toFixed(3)} ms/layer, ${(stage.allocatedBytes / 2 ** 20 / (end - start)).toFixed(1)} MiB/layer allocated) on ${runtime} (${detail})`);
    return { type: "stage.loaded", stage_id: stageId, ms_per_layer: msPerLayer };
  }

  private async tokenize(message: StageTokenize): Promise<StageNodeMessage> {
    const stage = this.stages.get(message.stage_id);
    if (!stage?.isFirst) throw new TesseraError("bad_request", `stage ${message.stage_id} is not a first stage on this node`);
    this.tokenizer ??= loadPromptTokenizer(this.file.path, stage.vocabSize);
    const tokenizer = await this.tokenizer;
    const tokens = tokenizer.tokenize(message.messages);
    let vocab;
    if (message.want_vocab) {
      const file = openGguf(this.file.path);
      try {
        vocab = vocabPieces(file.metadata);
      } finally {
        file.close();
      }
    }
    return { type: "stage.tokenized", request_id: message.request_id, tokens, eog_tokens: tokenizer.eogTokens(), ...(vocab ? { vocab } : {}) };
  }

  /**
   * Frees every loaded span (the node is draining: the coordinator has moved their requests to replicas); returns how
   * many there were. The file stays described, so `offer()` can offer it again.
   */
  releaseSpans(): number {
    const count = this.stages.size;
    // A ggml span's worker ends once the call in flight on it (if any) has answered.
    for (const s of this.stages.values()) void s.close();
    this.stages.clear();
    this.samplers.clear();
    return count;
  }

  /** Frees every span and ends their worker threads (the daemon's stop). */
  async close(): Promise<void> {
    const spans = [...this.stages.values()];
    this.stages.clear();
    await Promise.all(spans.map((s) => s.close()));
    if (this.tokenizer) await (await this.tokenizer).close();
  }
}

/** Adds deterministic noise of `scale` times each row's RMS (tests only: a lying stage). */
function perturbRows(values: Float32Array, cols: number, scale: number, seed: number): void {
  let state = (seed * 2654435761 + 1) >>> 0;
  for (let r = 0; r + cols <= values.length; r += cols) {
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += values[r + c]! * values[r + c]!;
    const rms = Math.sqrt(sum / cols);
    for (let c = 0; c < cols; c++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      values[r + c]! += scale * rms * (state / 2 ** 31 - 1);
    }
  }
}

function halfToFloat(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = F16[bits[i]!]!;
  return out;
}
function errorMessage(err: unknown, ids: { stage_id?: number; request_id?: string }): StageNodeMessage {
  const e = err instanceof TesseraError ? err : new TesseraError("internal_error", err instanceof Error ? err.message : String(err));
  return { type: "stage.error", ...ids, code: e.code, message: e.message };
}
