import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { createCoordinator, storeOptionsForConfig } from "../src/coordinator.js";
import { ManualClock } from "../src/clock.js";
import { loadCoordinatorConfig, type CoordinatorConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { generateApiToken, hashApiToken } from "../src/api-keys.js";
import { openStore } from "../src/store/index.js";
import { dropSchema, POSTGRES_URL, randomSchema } from "../src/store/postgres-test-support.js";
import type { Store } from "../src/store/types.js";
import { newNode, registration, signedInject, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

export type Dialect = "sqlite" | "postgres";

/** A listening coordinator on either dialect with one scripted node serving model `tiny`. */
export interface DialectCoordinator extends TestCoordinator {
  dialect: Dialect;
  /** The coordinator's data dir (the SQLite files and the content keys). */
  dir: string;
  /** The PostgreSQL schema the store lives in. */
  schema: string | undefined;
  baseUrl: string;
  node: ScriptedNode;
  nodeId: string;
  /** Closes node and coordinator (a clean shutdown) and keeps the files and the schema for inspection. */
  shutdown(): Promise<void>;
  /** A fetch against the coordinator with the test's API key. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; headers: Headers; text: string; json: () => any }>;
}

export async function coordinatorOn(
  dialect: Dialect,
  options: { overrides?: Partial<CoordinatorConfig>; wrapStore?: (store: Store) => Store } = {},
): Promise<DialectCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-${dialect}-`));
  const config = { ...loadCoordinatorConfig({ dataDir: dir, port: "0", admission: "open" }, {}), ...options.overrides };
  const schema = dialect === "postgres" ? randomSchema() : undefined;
  // The production store options (data dir, key dir), on the dialect under test.
  const base = storeOptionsForConfig(config, () => {});
  const opened = await openStore(schema === undefined ? base : { postgresUrl: POSTGRES_URL, schema, keyDir: base.keyDir });
  const store = options.wrapStore ? options.wrapStore(opened) : opened;
  const clock = new ManualClock(Date.now());
  const coordinator = await createCoordinator(config, { clock, logger: createLogger("silent"), store });
  const token = generateApiToken();
  await store.createApiKey({ id: "key-test", name: "test", tokenSha256: hashApiToken(token), rateLimitPerMinute: 1000, createdAt: new Date(clock.now()) });
  await coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(coordinator.app.server.address() as { port: number }).port}`;
  const n = newNode();
  const partial: TestCoordinator = {
    coordinator,
    clock,
    token,
    config,
    async close() {},
  };
  expect((await signedInject(partial, n.signer, "POST", "/api/v1/nodes/register", registration(n.id))).statusCode).toBe(200);
  const node = new ScriptedNode(baseUrl, n.signer, () => Math.floor(clock.now() / 1000));
  await node.connect();
  let closed: Promise<void> | undefined;
  const shutdown = () =>
    (closed ??= (async () => {
      await node.close();
      await coordinator.close();
    })());
  return {
    ...partial,
    dialect,
    dir,
    schema,
    baseUrl,
    node,
    nodeId: n.id,
    async api(method, path, body) {
      const res = await fetch(baseUrl + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
    },
    shutdown,
    async close() {
      await shutdown();
      if (schema !== undefined) await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function until<T>(fn: () => Promise<T | undefined>, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never held");
}
