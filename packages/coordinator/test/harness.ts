import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SseDecoder, generateKeyPair, type ModelFeature, type NodeRegister, secretKeySigner, type Signer, signRequest } from "@tessera/protocol";
import { createCoordinator, storeOptionsForConfig, type Coordinator } from "../src/coordinator.js";
import { ManualClock } from "../src/clock.js";
import { loadCoordinatorConfig, type CoordinatorConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { generateApiToken, hashApiToken } from "../src/api-keys.js";
import { openStore } from "../src/store/open-store.js";
import type { Store } from "../src/store/types.js";
import { ScriptedNode } from "./scripted-node.js";

/** An in-process coordinator on a temp SQLite file with a hand-moved clock, driven through Fastify `inject()`. */
export interface TestCoordinator {
  coordinator: Coordinator;
  clock: ManualClock;
  token: string;
  config: CoordinatorConfig;
  close(): Promise<void>;
}

export async function testCoordinator(
  overrides: Partial<CoordinatorConfig> = {},
  options: { wrapStore?: (store: Store) => Store } = {},
): Promise<TestCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-coord-"));
  const config = { ...loadCoordinatorConfig({ dataDir: dir, port: "0", admission: "open" }, {}), ...overrides };
  const clock = new ManualClock(Date.now());
  const store = options.wrapStore && options.wrapStore(await openStore(storeOptionsForConfig(config, () => {})));
  const coordinator = await createCoordinator(config, { clock, logger: createLogger("silent"), ...(store ? { store } : {}) });
  const token = generateApiToken();
  await coordinator.ctx.store.createApiKey({
    id: "key-test",
    name: "test",
    tokenSha256: hashApiToken(token),
    rateLimitPerMinute: config.rateLimitPerMinute,
    createdAt: new Date(clock.now()),
  });
  return {
    coordinator,
    clock,
    token,
    config,
    async close() {
      await coordinator.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function newNode(): { signer: Signer; id: string } {
  const keys = generateKeyPair();
  return { signer: secretKeySigner(keys.secretKeyHex), id: keys.publicKeyHex };
}

/** What a scripted node announces for each model unless told otherwise: every generation feature there is. */
export const SCRIPTED_FEATURES: ModelFeature[] = ["chat", "raw_prompt", "response_format", "tools", "forced_tool_choice", "logprobs"];

export function registration(id: string, models = ["tiny"], features: ModelFeature[] = SCRIPTED_FEATURES): NodeRegister {
  return {
    type: "register",
    public_key: id,
    version: "0.1.0",
    hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] },
    models: models.map((m) => ({ id: m, backend: "embedded", features })),
    max_concurrency: 2,
  };
}

/** A signed node request through inject(), signed at the test clock's time unless told otherwise. */
export async function signedInject(
  t: TestCoordinator,
  signer: Signer,
  method: "GET" | "POST",
  url: string,
  body?: unknown,
  tamper: { nowSeconds?: number; nonce?: string; signAs?: { method?: string; path?: string; body?: string } } = {},
) {
  const payload = body === undefined ? "" : JSON.stringify(body);
  const headers = signRequest(
    signer,
    { method: tamper.signAs?.method ?? method, path: tamper.signAs?.path ?? url, body: tamper.signAs?.body ?? payload },
    { nowSeconds: tamper.nowSeconds ?? Math.floor(t.clock.now() / 1000), ...(tamper.nonce ? { nonce: tamper.nonce } : {}) },
  );
  return t.coordinator.app.inject({
    method,
    url,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { payload }),
  });
}

/** A test coordinator listening on a free port, with `count` nodes registered and connected as scripted nodes. */
export interface ScriptedNetwork {
  t: TestCoordinator;
  baseUrl: string;
  nodes: ScriptedNode[];
  close(): Promise<void>;
}

export async function scriptedNetwork(count: number, overrides: Partial<CoordinatorConfig> = {}): Promise<ScriptedNetwork> {
  const t = await testCoordinator(overrides);
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
  const nodes: ScriptedNode[] = [];
  for (let i = 0; i < count; i++) {
    const n = newNode();
    const res = await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", registration(n.id));
    if (res.statusCode !== 200) throw new Error(`registration refused: ${res.body}`);
    const node = new ScriptedNode(baseUrl, n.signer, () => Math.floor(t.clock.now() / 1000));
    await node.connect();
    nodes.push(node);
  }
  return {
    t,
    baseUrl,
    nodes,
    async close() {
      for (const n of nodes) await n.close();
      await t.close();
    },
  };
}

/** Starts a streaming native job on a scripted network and reads its SSE events to the end. */
export async function streamNativeJob(net: ScriptedNetwork, body: object): Promise<{ id: string; events: string[] }> {
  const res = await fetch(`${net.baseUrl}/api/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${net.t.token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true, ...body }),
  });
  return { id: res.headers.get("x-tessera-job-id")!, events: new SseDecoder().push(await res.text()).map((e) => e.data) };
}
