/**
 * The messages between a ggml span's worker thread (ggml-worker.ts) and the thread that holds the span
 * (ggml-worker-span.ts). Activations never travel in a message: they sit in one SharedArrayBuffer per span (the
 * "I/O buffer"), laid out per call as
 *
 *   [input: n tokens as i32, or n x n_embd f32] [positions: n i32] [output: rows x width f32]
 *
 * at the byte offsets the forward message names. The holding thread writes the input and positions, the worker
 * hands them to ggml and has ggml write the output straight into the buffer; the holder returns a view of it. Only
 * one call is in the worker at a time (the holder serialises them), so one buffer suffices.
 */
import type { ErrorCode } from "@tessera/protocol";
import type { GpuStageBackend } from "../stage-backend.js";

/** What the worker is started with (`workerData`). */
export interface GgmlWorkerData {
  path: string;
  start: number;
  end: number;
  maxContext?: number;
  threads: number;
  libDir?: string;
  cpuVariant?: string;
  /** Rows computed per graph (the stage's micro-batch; default MICRO_BATCH). */
  microBatch?: number;
  /** A GPU span: the backend, the folder of its library and the device index (ggml-gpu.ts); absent for ggml-cpu. */
  gpu?: GpuSpanPlacement;
}

export interface GpuSpanPlacement {
  kind: GpuStageBackend;
  dir: string;
  device: number;
}

/** The span's shape and what it loaded, as the worker reports it once the span is ready. */
export interface GgmlSpanInfo {
  isFirst: boolean;
  isLast: boolean;
  hiddenSize: number;
  vocabSize: number;
  maxContext: number;
  loadedBytes: number;
  cpuVariant: string;
  libDir: string;
  /** Size of the weight buffer as the backend allocated it, and the backend's name (ggml_backend_name). */
  allocatedBytes: number;
  backendName: string;
}

export interface ForwardRequest {
  type: "forward";
  id: number;
  requestId: string;
  /** Present when the holder grew the buffer: the worker uses this one from now on. */
  io?: SharedArrayBuffer;
  /** Rows in this call (= positions). */
  n: number;
  /** How the input is laid out: token ids (i32) or hidden states (f32). */
  input: "ids" | "hidden";
  /** Values of input (n for ids, n x n_embd for hidden states; the stage checks the count). */
  inputLength: number;
  positionsOffset: number;
  outputOffset: number;
  logits: "last" | "all";
}

export type HolderMessage = ForwardRequest | { type: "drop"; requestId: string } | { type: "close" };

export interface WireError {
  code: ErrorCode;
  message: string;
}

export type WorkerMessage =
  | { type: "loaded"; info: GgmlSpanInfo }
  | { type: "load-failed"; error: WireError }
  /**
   * `length`: output values written at outputOffset; `cached`: the request's cached tokens after the call; `ms`: wall
   * time the worker spent in the step (what the hand-off to and from the worker adds is the caller's time minus it).
   */
  | { type: "forwarded"; id: number; length: number; cached: number; ms: number; error?: WireError }
  | { type: "closed" };
