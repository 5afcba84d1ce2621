import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadNodeConfig } from "@tessera/node/config";

/** The embedding model `tessera up` serves beside the chat model (issue 11: the demo network serves embeddings too). */
export const DEMO_EMBEDDING_MODEL = "tessera-demo-embed";

interface Daemon {
  ready: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Makes the demo embedding model on first run: a small random-weight Llama whose GGUF names a mean pooling type, which
 * the embedded engine serves for `/v1/embeddings` only (64-dimensional unit vectors). Returns its path.
 */
export async function ensureDemoEmbeddingModel(dataDir: string): Promise<string> {
  const path = join(dataDir, "models", `${DEMO_EMBEDDING_MODEL}.gguf`);
  if (existsSync(path)) return path;
  process.stdout.write(`first run: making the demo embedding model (a small random-weight Llama with mean pooling, ~9 MB) at ${path} …\n`);
  // The data dir holds the coordinator's store: private (0700) from the start, as up.ts makes it.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(join(dataDir, "models"), { recursive: true });
  // Loaded only here: the model maker pulls in llama.cpp bindings no other command needs.
  const { makeTinyModel } = await import("@tessera/testkit");
  await makeTinyModel({ path, seed: 2, vocab: "spm", name: DEMO_EMBEDDING_MODEL, pooling: "mean" });
  return path;
}

/**
 * A second node, with its own home (`<data dir>/node-embed`, so its own key) on the embedded engine, serving the demo
 * embedding model. Logs go with the first node's.
 */
export async function startDemoEmbeddingNode(options: {
  coordinatorUrl: string;
  dataDir: string;
  modelPath: string;
  logger: Parameters<typeof import("@tessera/node").startDaemon>[1]["logger"];
}): Promise<Daemon> {
  const { initNode, startDaemon } = await import("@tessera/node");
  const home = join(options.dataDir, "node-embed");
  const settings = { coordinator_url: options.coordinatorUrl, backend: "embedded", model_path: options.modelPath };
  initNode({ home, settings });
  // Like the demo chat node: serves whoever uses this machine, so no idle policy.
  const daemon = await startDaemon(loadNodeConfig({ home, flags: { ...settings, "idle.mode": "always" } }), { logger: options.logger });
  await daemon.ready;
  return daemon;
}

export function embeddingBanner(url: string): string {
  return `  Embeddings (a second node serving "${DEMO_EMBEDDING_MODEL}"):

  curl ${url}/v1/embeddings -H 'content-type: application/json' \\
    -d '{"model":"${DEMO_EMBEDDING_MODEL}","input":["hello","world"]}'

`;
}
