import { basename } from "node:path";
import { freePort } from "../cluster/free-port.js";
import { ManagedProcess } from "../cluster/managed-process.js";

/**
 * `startLlamaServer()`: the real llama-server binary (from `buildLlamaServer()`) serving one GGUF on 127.0.0.1,
 * resolved once `GET /health` answers 200 (llama-server answers 503 while the model loads).
 */
export interface StartLlamaServerOptions {
  binaryPath: string;
  modelPath: string;
  /** Default: a free port. */
  port?: number;
  /** The model's name on `/v1/models` and in requests (`--alias`). Default: the file name without `.gguf`. */
  alias?: string;
  /** Threads (`-t`). Default 1: tests run on small shared machines. */
  threads?: number;
  /** Context size (`-c`). Default 2048. */
  contextSize?: number;
  /** More llama-server arguments, appended last. */
  args?: string[];
  /** How long loading may take before the start fails. Default 120 s. */
  readyTimeoutMs?: number;
  /** Also write the server's output to this file. */
  logFile?: string;
}

export interface RunningLlamaServer {
  /** `http://127.0.0.1:<port>` */
  baseURL: string;
  port: number;
  modelId: string;
  process: ManagedProcess;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export async function startLlamaServer(options: StartLlamaServerOptions): Promise<RunningLlamaServer> {
  const port = options.port ?? (await freePort());
  const modelId = options.alias ?? basename(options.modelPath).replace(/\.gguf$/i, "");
  const args = [
    "--model", options.modelPath,
    "--alias", modelId,
    "--host", "127.0.0.1",
    "--port", String(port),
    "--threads", String(options.threads ?? 1),
    "--ctx-size", String(options.contextSize ?? 2048),
    "--no-webui",
    ...(options.args ?? []),
  ];
  const proc = new ManagedProcess(`llama-server :${port}`, options.binaryPath, args, { logFile: options.logFile });
  const baseURL = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  let lastStatus = "no answer";
  try {
    for (;;) {
      if (!proc.running) throw new Error(`llama-server exited before it was ready; output:\n${proc.logText.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`llama-server not healthy within ${options.readyTimeoutMs ?? 120_000} ms (${lastStatus}); output:\n${proc.logText.slice(-4000)}`);
      try {
        const res = await fetch(`${baseURL}/health`, { signal: AbortSignal.timeout(5_000) });
        await res.body?.cancel();
        if (res.status === 200) break;
        lastStatus = `HTTP ${res.status}`;
      } catch (err) {
        lastStatus = String(err);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await proc.stop(2_000);
    throw err;
  }
  return { baseURL, port, modelId, process: proc, stop: () => proc.stop() };
}
