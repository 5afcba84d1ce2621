/**
 * nonces: what the replicas' shared replay check (packages/coordinator/src/replicas/design.md) costs a signed node
 * request, against the in-process nonce cache alone, side by side in one run on the local PostgreSQL
 * (127.0.0.1:5432, a scratch database dropped at the end).
 *
 *   npm run bench -- nonces [--requests 2000] [--rounds 4] [--concurrency 16]
 *
 * 1. The check alone: `verifyNodeRequest` (signature + in-process cache) against `verifyNodeRequestEverywhere` (the
 *    same, then one `insert … on conflict do nothing` into `node_nonces`), sequential, in alternating rounds.
 * 2. A whole signed heartbeat through the coordinator's HTTP stack (`inject`, a coordinator on the same PostgreSQL
 *    store, heartbeat written to the store), with the shared check on and off, sequential and `--concurrency` at once.
 *
 * Prints per-request latency (mean, p50, p99) for each path and `RESULT nonces_check_added_ms_p50`,
 * `RESULT nonces_heartbeat_ratio` (heartbeats per second with the shared check ÷ without, sequential) and
 * `RESULT nonces_heartbeat_ratio_concurrent`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { NonceCache, generateKeyPair, signRequest } from "@tessera/protocol";
import { createCoordinator } from "../packages/coordinator/src/coordinator.js";
import { loadCoordinatorConfig } from "../packages/coordinator/src/config.js";
import { ManualClock } from "../packages/coordinator/src/clock.js";
import { createLogger } from "../packages/coordinator/src/logger.js";
import { verifyNodeRequest, verifyNodeRequestEverywhere, type NodeAuthDeps } from "../packages/coordinator/src/http/node-auth.js";
import { SharedNonces } from "../packages/coordinator/src/replicas/shared-nonces.js";
import { openStore } from "../packages/coordinator/src/store/index.js";
import { createScratchDatabase } from "@tessera/testkit";
import { wasmSchnorrSigner, wasmSchnorrVerifier } from "@tessera/protocol/wasm-schnorr";
import { fmt, mean, percentile } from "./lib-stats.js";

const HEARTBEAT = { type: "heartbeat", gpus: [], loaded_models: [], active_jobs: 0, max_concurrency: 1, draining: false };

function summary(label: string, ms: number[]): string {
  return `${label.padEnd(44)} mean ${fmt(mean(ms))} ms  p50 ${fmt(percentile(ms, 50))} ms  p99 ${fmt(percentile(ms, 99))} ms  (${ms.length})`;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { requests: { type: "string", default: "2000" }, rounds: { type: "string", default: "4" }, concurrency: { type: "string", default: "16" } },
  });
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  const concurrency = Number(values.concurrency);
  if (![requests, rounds, concurrency].every((n) => Number.isInteger(n) && n > 0)) throw new Error("--requests, --rounds and --concurrency take positive integers");
  const database = await createScratchDatabase();
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-nonces-"));
  const store = await openStore({ postgresUrl: database.url });
  const clock = new ManualClock(Date.now());
  const logger = createLogger("silent");
  try {
    const keys = generateKeyPair();
    const signer = wasmSchnorrSigner(keys.secretKeyHex);
    const nowSeconds = () => Math.floor(clock.now() / 1000);
    const signed = (path: string, body: string) => signRequest(signer, { method: "POST", path, body }, { nowSeconds: nowSeconds() });

    // 1. The check alone.
    const body = JSON.stringify(HEARTBEAT);
    const local: NodeAuthDeps = { clock, nonces: new NonceCache(), verifier: wasmSchnorrVerifier };
    const shared: NodeAuthDeps = { clock, nonces: new NonceCache(), verifier: wasmSchnorrVerifier, shared: new SharedNonces(store, clock, logger) };
    const checkLocal: number[] = [];
    const checkShared: number[] = [];
    // This process's CPU (the coordinator's side: verify, pg client), microseconds, per path.
    const cpu = { local: 0, shared: 0 };
    for (let round = 0; round < rounds; round++) {
      for (const [deps, out] of [
        [local, checkLocal],
        [shared, checkShared],
      ] as const) {
        const batch = Array.from({ length: requests / rounds }, () => signed("/api/v1/nodes/heartbeat", body));
        const cpuBefore = process.cpuUsage();
        for (const headers of batch) {
          const request = { method: "POST", url: "/api/v1/nodes/heartbeat", headers, rawBody: body };
          const started = performance.now();
          const result = deps.shared ? await verifyNodeRequestEverywhere(request, deps) : verifyNodeRequest(request, deps);
          out.push(performance.now() - started);
          if (!result.ok) throw new Error(`a fresh request was refused: ${result.reason}`);
        }
        const used = process.cpuUsage(cpuBefore);
        cpu[deps.shared ? "shared" : "local"] += used.user + used.system;
      }
    }

    // 2. A whole signed heartbeat through the HTTP stack, the shared check on and off on the same coordinator.
    const config = loadCoordinatorConfig({ dataDir: dir, port: "0", admission: "open", replicaId: "bench", logLevel: "silent" }, {});
    const coordinator = await createCoordinator(config, { clock, logger, store });
    const sharedCheck = coordinator.ctx.nodeAuth.shared;
    if (!sharedCheck) throw new Error("a coordinator on PostgreSQL has no shared nonce check");
    const registerBody = JSON.stringify({
      type: "register",
      public_key: keys.publicKeyHex,
      version: "0.1.0",
      hardware: { cpu_cores: 2, ram_mb: 4096, gpus: [] },
      models: [{ id: "bench", backend: "embedded", features: ["chat"] }],
      max_concurrency: 1,
    });
    const registered = await coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", headers: { ...signed("/api/v1/nodes/register", registerBody), "content-type": "application/json" }, payload: registerBody });
    if (registered.statusCode !== 200) throw new Error(`registration refused: ${registered.body}`);
    const heartbeat = async (): Promise<number> => {
      const headers = { ...signed("/api/v1/nodes/heartbeat", body), "content-type": "application/json" };
      const started = performance.now();
      const res = await coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/heartbeat", headers, payload: body });
      if (res.statusCode !== 200) throw new Error(`heartbeat refused: ${res.body}`);
      return performance.now() - started;
    };
    const http = { off: [] as number[], on: [] as number[] };
    const wall = { off: 0, on: 0, offConcurrent: 0, onConcurrent: 0 };
    const per = Math.max(1, Math.floor(requests / rounds / 2));
    for (let round = 0; round < rounds; round++) {
      for (const mode of ["off", "on"] as const) {
        coordinator.ctx.nodeAuth.shared = mode === "on" ? sharedCheck : undefined;
        let started = performance.now();
        for (let i = 0; i < per; i++) http[mode].push(await heartbeat());
        wall[mode] += performance.now() - started;
        started = performance.now();
        await Promise.all(Array.from({ length: concurrency }, async () => {
          for (let i = 0; i < Math.ceil(per / concurrency); i++) await heartbeat();
        }));
        wall[mode === "on" ? "onConcurrent" : "offConcurrent"] += performance.now() - started;
      }
    }
    coordinator.ctx.nodeAuth.shared = sharedCheck;
    const concurrentCount = rounds * concurrency * Math.ceil(per / concurrency);
    await coordinator.close();

    process.stdout.write(`PostgreSQL ${database.url} (loopback, a scratch database); ${requests} checks per path in ${rounds} alternating rounds\n`);
    process.stdout.write(`${summary("check: signature + in-process cache", checkLocal)}\n`);
    process.stdout.write(`${summary("check: + shared nonce row (PostgreSQL)", checkShared)}\n`);
    process.stdout.write(`CPU of this process per check: ${fmt(cpu.local / checkLocal.length / 1000)} ms in-process only, ${fmt(cpu.shared / checkShared.length / 1000)} ms with the shared row\n`);
    process.stdout.write(`${summary("heartbeat over HTTP, shared check off", http.off)}\n`);
    process.stdout.write(`${summary("heartbeat over HTTP, shared check on", http.on)}\n`);
    const rate = (count: number, ms: number) => (count * 1000) / ms;
    const seqOff = rate(http.off.length, wall.off);
    const seqOn = rate(http.on.length, wall.on);
    const conOff = rate(concurrentCount, wall.offConcurrent);
    const conOn = rate(concurrentCount, wall.onConcurrent);
    process.stdout.write(`heartbeats/s sequential: ${fmt(seqOff, 0)} off, ${fmt(seqOn, 0)} on; ${concurrency} at once: ${fmt(conOff, 0)} off, ${fmt(conOn, 0)} on\n`);
    process.stdout.write(`RESULT nonces_check_added_ms_p50 ${fmt(percentile(checkShared, 50) - percentile(checkLocal, 50))}\n`);
    process.stdout.write(`RESULT nonces_check_added_cpu_ms ${fmt((cpu.shared / checkShared.length - cpu.local / checkLocal.length) / 1000)}\n`);
    process.stdout.write(`RESULT nonces_check_ratio_p50 ${fmt(percentile(checkShared, 50) / percentile(checkLocal, 50), 2)}\n`);
    process.stdout.write(`RESULT nonces_heartbeat_ratio ${fmt(seqOn / seqOff, 3)}\n`);
    process.stdout.write(`RESULT nonces_heartbeat_ratio_concurrent ${fmt(conOn / conOff, 3)}\n`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    await database.drop();
  }
}
