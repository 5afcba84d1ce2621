/**
 * What a span of a file costs on this node's stage backend, for the offer placement sizes spans by (design.md, "What
 * a node offers"): the memory one layer takes there (`spanBytesPerLayer`, computed before anything is loaded) and the
 * time one layer of a decode step takes there (`probeMsPerLayer`, measured on a few layers in a worker thread).
 */
import { TesseraError } from "@tessera/protocol";
import { ggmlSpanBytes } from "./ggml/ggml-stage.js";
import { openGguf } from "./gguf-reader.js";
import { kvCacheBytesPerLayer } from "./kv-cache.js";
import { readLlamaConfig } from "./llama-config.js";
import type { Span, StageRuntimeChoice } from "./span-runtime.js";
import type { StageBackend } from "./stage-backend.js";
import { residentBytes } from "./weights.js";
import { startWorker } from "./worker-start.js";

/**
 * Bytes one layer of the file takes on the runtime `choice` names: the largest layer's weights as that runtime holds
 * them plus one request's KV cache at `maxContext` (default: the file's context length, the span's own limit).
 * ggml (CPU or GPU device): each tensor's size in the device's buffer type, as ggml allocates it (ggmlSpanBytes).
 * WebAssembly: the tensors' resident bytes in the arena (Q8_0 and K-quants are unpacked) and the cache's arena
 * blocks at the doubled capacity that holds the context.
 */
export function spanBytesPerLayer(choice: StageRuntimeChoice, path: string, maxContext?: number): number {
  if (choice.runtime === undefined) throw new TesseraError(choice.code ?? "internal_error", choice.detail);
  if (choice.runtime !== "wasm") {
    const g = choice.lib!;
    const buft = choice.gpu && choice.device ? g.devBufferType(choice.gpu.device(choice.device.index)) : g.cpuBufferType();
    const bytes = ggmlSpanBytes(g, buft, path, maxContext);
    return Math.max(...bytes.layerWeights) + bytes.kvPerLayer;
  }
  const file = openGguf(path);
  try {
    const config = readLlamaConfig(file);
    const weights = new Array<number>(config.nLayer).fill(0);
    for (const t of file.tensors.values()) {
      const m = /^blk\.(\d+)\./.exec(t.name);
      if (m) weights[Number(m[1])]! += residentBytes(t);
    }
    return Math.max(...weights) + kvCacheBytesPerLayer(config.nHeadKv * config.headDim, maxContext ?? config.contextLength);
  } finally {
    file.close();
  }
}

/** Layers of the probe span: enough that a step's fixed cost (a worker hand-off, a graph build) weighs little. */
export const PROBE_LAYERS = 4;
/** Timed steps of the probe (four layers each: cheap beside loading them). */
export const PROBE_STEPS = 10;

/**
 * Per-layer time of a decode step on a loaded span: one warm-up token, then `steps` tokens at the next positions,
 * each timed; the fastest step over the span's layers. The fastest, not the median: what differs between backends
 * is the time a step takes when it has the CPU or GPU, while the other processes a step waits behind (daemons that
 * start together probe together) come and go. The probe request's cache is dropped afterwards.
 */
export async function measureMsPerLayer(span: Span, now: () => number, steps = 5): Promise<number> {
  const probe = `probe-${span.start}-${span.end}`;
  const input = span.isFirst ? new Int32Array([0]) : new Float32Array(span.hiddenSize).fill(0.01);
  try {
    await span.forward(probe, input, [0]);
    const times: number[] = [];
    for (let i = 1; i <= steps; i++) {
      const t0 = now();
      await span.forward(probe, input, [i]);
      times.push(now() - t0);
    }
    return Math.min(...times) / (span.end - span.start);
  } finally {
    span.dropRequest(probe);
  }
}

export interface SpanProbeOptions {
  path: string;
  backend: StageBackend;
  threads?: number;
  gpuRuntimeDir?: string;
}

/** What the probe worker (span-cost-worker.ts) answers. */
export type SpanProbeAnswer =
  | { ok: true; msPerLayer: number; start: number; end: number; runtime: string }
  | { ok: false; code: string; message: string };

/** The layers a probe loads: PROBE_LAYERS from the middle (no embedding or head, when the file has enough layers). */
export function probeLayers(layerCount: number): { start: number; end: number } {
  const n = Math.min(layerCount, PROBE_LAYERS);
  const start = Math.floor((layerCount - n) / 2);
  return { start, end: start + n };
}

/**
 * Loads a few layers of the file on `backend` in a worker thread, times decode steps on them (measureMsPerLayer) and
 * frees everything with the thread: the WebAssembly runtime never frees weights from its arena, and the arena is per
 * thread. A probe that fails rejects with the span's TesseraError.
 */
export async function probeMsPerLayer(options: SpanProbeOptions): Promise<Extract<SpanProbeAnswer, { ok: true }>> {
  const worker = startWorker("span-cost-worker", import.meta.url, options);
  try {
    const answer = await new Promise<SpanProbeAnswer>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new TesseraError("internal_error", `the span probe's worker ended (exit code ${code}) before answering`)));
    });
    if (!answer.ok) throw new TesseraError(answer.code as TesseraError["code"], answer.message);
    return answer;
  } finally {
    await worker.terminate();
  }
}
