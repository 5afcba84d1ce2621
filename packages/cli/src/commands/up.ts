import { existsSync, mkdirSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { defaultDataDir, loadCoordinatorConfig } from "@tessera/coordinator/config";
import { loadNodeConfig } from "@tessera/node/config";
import { TesseraError, modelIdFromFileName } from "@tessera/protocol";
import { type HubSettings, loadHubSettings, printedCommand } from "../config.js";
import { FORCE_HINT, waitForSignal } from "../wait-for-signal.js";
import { ensurePortFree } from "../port-check.js";
import { embeddingBanner, ensureDemoEmbeddingModel, startDemoEmbeddingNode } from "./up-embeddings.js";

export const DEMO_MODEL = "tessera-demo";

interface UpFlags {
  port: string;
  host: string;
  dataDir?: string;
  model?: string;
  logFormat?: string;
  hfEndpoint?: string;
}

/** `tessera up` (what `npm start` runs): a coordinator and one node on the embedded engine, in one process. */
export function addUpCommand(program: Command): void {
  program
    .command("up")
    .description("run a whole local network in one command: coordinator (open mode) + one node on the embedded llama.cpp engine")
    .option("--port <port>", "coordinator HTTP port", "7337")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--data-dir <dir>", "where the store, the node's home and the demo model live (default ~/.local/share/tessera)")
    .option("--model <path|ref>", "serve this GGUF instead of the generated demo model: a file, or https://…/file.gguf, hf:owner/repo/file.gguf, hf:owner/repo:Q4_K_M (downloaded once into the data dir's models folder, resumable)")
    .option("--hf-endpoint <url>", "Hugging Face hub or a mirror for hf: references (HF_ENDPOINT; default https://huggingface.co; HF_TOKEN for gated repos)")
    .option("--log-format <format>", "auto (readable on a terminal, JSON otherwise), pretty or json (TESSERA_LOG_FORMAT)")
    .action(async (flags: UpFlags) => {
      const dataDir = resolve(flags.dataDir ?? defaultDataDir());
      const reference = flags.model !== undefined && /^(https?:\/\/|hf:)/i.test(flags.model.trim()) ? flags.model.trim() : undefined;
      // HF_ENDPOINT is read (and refused when malformed) only when there is something to download, or the flag is given.
      const hub = reference !== undefined || flags.hfEndpoint !== undefined ? loadHubSettings(flags) : undefined;
      let modelPath = flags.model && !reference ? resolve(flags.model) : join(dataDir, "models", `${DEMO_MODEL}.gguf`);
      if (flags.model && !reference && !existsSync(modelPath)) throw new TesseraError("bad_request", `--model: no file at ${modelPath}`);
      const config = loadCoordinatorConfig({ port: flags.port, host: flags.host, dataDir, open: true, logFormat: flags.logFormat });
      await ensurePortFree(config.host, config.port);
      if (reference) modelPath = await downloadModel(reference, dataDir, hub!);
      if (!flags.model && !existsSync(modelPath)) {
        process.stdout.write(`first run: making the demo model (a small random-weight Llama, ~5 MB) at ${modelPath} …\n`);
        // The coordinator's store lives in the data dir: private (0700) from the start, not tightened on first start.
        mkdirSync(dirname(dataDir), { recursive: true });
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        mkdirSync(join(dataDir, "models"), { recursive: true });
        // Loaded only here: the model maker pulls in llama.cpp bindings no other command needs.
        const { makeTinyModel } = await import("@tessera/testkit");
        await makeTinyModel({ path: modelPath, seed: 1, vocab: "spm", name: DEMO_MODEL, eosScale: 2.5 });
      }
      const embeddingModelPath = await ensureDemoEmbeddingModel(dataDir);
      const { createLogger, startCoordinator } = await import("@tessera/coordinator");
      const { createNodeLogger, initNode, startDaemon } = await import("@tessera/node");
      const coordinator = await startCoordinator(config, { logger: createLogger("warn", { format: config.logFormat }) });
      const home = join(dataDir, "node");
      const settings = { coordinator_url: coordinator.url, backend: "embedded", model_path: modelPath };
      initNode({ home, settings });
      // The demo serves whoever uses this machine, so it must not step aside when they type (the idle policy).
      const nodeConfig = loadNodeConfig({ home, flags: { ...settings, "idle.mode": "always" } });
      const output = createNodeLogger({
        level: nodeConfig.log_level,
        format: config.logFormat,
        file: nodeConfig.log_file,
        rotate: { maxBytes: nodeConfig.log_max_mb * 2 ** 20, keep: nodeConfig.log_keep },
      });
      let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
      let embeddingNode: Awaited<ReturnType<typeof startDemoEmbeddingNode>>;
      try {
        daemon = await startDaemon(nodeConfig, { logger: output.logger });
        await daemon.ready;
        embeddingNode = await startDemoEmbeddingNode({ coordinatorUrl: coordinator.url, dataDir, modelPath: embeddingModelPath, logger: output.logger });
      } catch (err) {
        await daemon?.stop();
        await coordinator.close();
        throw err;
      }
      // The id the embedded engine announces for the file (a name with spaces or brackets is made a valid model id).
      const model = modelIdFromFileName(basename(modelPath).replace(/\.gguf$/i, ""));
      process.stdout.write(banner(coordinator.url, model, printedCommand()));
      await waitForSignal((signal) =>
        process.stdout.write(`\n${signal} received: shutting down, draining the node, then the coordinator (${FORCE_HINT})\n`),
      );
      // New requests get 503 shutting_down at once while the node finishes the jobs it holds.
      coordinator.stopAccepting();
      await embeddingNode.stop();
      await daemon.stop();
      await coordinator.close();
      output.close();
      process.exit(0);
    });
}

/** `--model REF`: the same download `tessera model install` does (resumable, checked), into `<data dir>/models`. */
async function downloadModel(reference: string, dataDir: string, hub: HubSettings): Promise<string> {
  mkdirSync(dirname(dataDir), { recursive: true });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { installGguf } = await import("@tessera/node");
  const { ProgressBar, formatBytes } = await import("../inventory/progress-bar.js");
  const bar = new ProgressBar(process.stdout, () => Date.now(), { pipeEveryMs: 5000 });
  // Ctrl-C stops the download and keeps its .part: the next `tessera up --model` with the same reference resumes it.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const result = await installGguf({
      reference,
      modelsDir: join(dataDir, "models"),
      hubEndpoint: hub.endpoint,
      ...(hub.token ? { hubToken: hub.token } : {}),
      fetch: (input, init) => fetch(input, init),
      onProgress: (p) => bar.update(p),
      signal: stop.signal,
    });
    bar.done();
    process.stdout.write(`${result.alreadyInstalled ? "model already downloaded" : "downloaded"}: ${result.path} (${formatBytes(result.sizeBytes)}, sha256 ${result.sha256}${result.sha256Checked ? ", checked" : ""})\n`);
    return result.path;
  } catch (err) {
    bar.done();
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function banner(url: string, model: string, tessera: string): string {
  return `
Tessera is running: coordinator ${url} (open mode), one node serving "${model}".

  dashboard: ${url}/

  ${tessera} chat "hello"

  curl ${url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"${model}","messages":[{"role":"user","content":"hello"}],"stream":true}'

  // JavaScript (npm install openai)
  import OpenAI from "openai";
  const client = new OpenAI({ baseURL: "${url}/v1", apiKey: "open-mode" });
  const reply = await client.chat.completions.create({ model: "${model}", messages: [{ role: "user", content: "hello" }] });

${embeddingBanner(url)}Press Ctrl-C to stop.
`;
}
