/**
 * The program of a ggml span's worker thread: loads the span (ggml-stage.ts) from `workerData`, then serves the
 * holder's messages (ggml-worker-messages.ts) in order until `close`. `ggml_backend_graph_compute` blocks the thread
 * that calls it; here that is this worker, so the daemon's event loop keeps running while a step computes.
 *
 * Every failure of a call is answered (`forwarded` with an error; `load-failed`), so the holder never waits on a
 * call the worker gave up. A load failure ends the worker.
 */
import { parentPort, workerData } from "node:worker_threads";
import { TesseraError } from "@tessera/protocol";
import { loadGgmlStage, type GgmlStage } from "./ggml-stage.js";
import type { ForwardRequest, GgmlWorkerData, HolderMessage, WireError, WorkerMessage } from "./ggml-worker-messages.js";

const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);

function wireError(err: unknown): WireError {
  if (err instanceof TesseraError) return { code: err.code, message: err.message };
  return { code: "internal_error", message: err instanceof Error ? err.message : String(err) };
}

const data = workerData as GgmlWorkerData;
let stage: GgmlStage | undefined;
try {
  stage = loadGgmlStage(data);
} catch (err) {
  post({ type: "load-failed", error: wireError(err) });
  port.close();
}

if (stage) {
  const s = stage;
  let io: SharedArrayBuffer | undefined;
  post({
    type: "loaded",
    info: {
      isFirst: s.isFirst, isLast: s.isLast, hiddenSize: s.hiddenSize, vocabSize: s.vocabSize, maxContext: s.maxContext,
      loadedBytes: s.loadedBytes, cpuVariant: s.cpuVariant, libDir: s.libDir, allocatedBytes: s.allocatedBytes, backendName: s.backendName,
    },
  });

  const forward = (m: ForwardRequest): WorkerMessage => {
    if (m.io) io = m.io;
    const t0 = performance.now();
    try {
      if (!io) throw new TesseraError("internal_error", "no I/O buffer for the ggml span");
      // Views over the shared buffer: ggml reads the input from it and writes the output into it (no copies here).
      const input = m.input === "ids" ? new Int32Array(io, 0, m.inputLength) : new Float32Array(io, 0, m.inputLength);
      const positions = new Int32Array(io, m.positionsOffset, m.n);
      const into = new Float32Array(io, m.outputOffset, (io.byteLength - m.outputOffset) >> 2);
      const out = s.forward(m.requestId, input, positions, { logits: m.logits }, into);
      return { type: "forwarded", id: m.id, length: out.length, cached: s.cachedTokens(m.requestId), ms: performance.now() - t0 };
    } catch (err) {
      return { type: "forwarded", id: m.id, length: 0, cached: s.cachedTokens(m.requestId), ms: performance.now() - t0, error: wireError(err) };
    }
  };

  port.on("message", (m: HolderMessage) => {
    switch (m.type) {
      case "forward":
        return post(forward(m));
      case "drop":
        s.dropRequest(m.requestId);
        return;
      case "close":
        s.close();
        post({ type: "closed" });
        port.close();
        return;
    }
  });
}
