/**
 * The program of a span probe's worker thread (span-cost.ts, probeMsPerLayer): loads the probe layers of the file on
 * the backend named in `workerData`, measures the per-layer step time, closes the span and answers once.
 */
import { parentPort, workerData } from "node:worker_threads";
import { TesseraError } from "@tessera/protocol";
import { openGguf } from "./gguf-reader.js";
import { readLlamaConfig } from "./llama-config.js";
import { measureMsPerLayer, PROBE_STEPS, probeLayers, type SpanProbeAnswer, type SpanProbeOptions } from "./span-cost.js";
import { loadSpan } from "./span-runtime.js";

const options = workerData as SpanProbeOptions;

async function probe(): Promise<SpanProbeAnswer> {
  const file = openGguf(options.path);
  let layerCount: number;
  try {
    layerCount = readLlamaConfig(file).nLayer;
  } finally {
    file.close();
  }
  const { start, end } = probeLayers(layerCount);
  const { span, runtime } = await loadSpan({ path: options.path, start, end, backend: options.backend, threads: options.threads, gpuRuntimeDir: options.gpuRuntimeDir });
  try {
    return { ok: true, msPerLayer: await measureMsPerLayer(span, () => performance.now(), PROBE_STEPS), start, end, runtime };
  } finally {
    await span.close();
  }
}

probe().then(
  (answer) => parentPort!.postMessage(answer),
  (err: unknown) => {
    const e = err instanceof TesseraError ? err : new TesseraError("internal_error", err instanceof Error ? err.message : String(err));
    parentPort!.postMessage({ ok: false, code: e.code, message: e.message } satisfies SpanProbeAnswer);
  },
);
