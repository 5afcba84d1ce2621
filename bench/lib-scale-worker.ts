/**
 * Worker thread of the `scale` bench: plays a slice of the simulated nodes. Each registers, holds a signed
 * WebSocket session (answers pings, accepts jobs and streams a short scripted answer) and sends a signed heartbeat
 * every interval with jitter. Posts its counters to the parent on request.
 */
import { parentPort, workerData } from "node:worker_threads";
import WebSocket from "ws";
import { type CoordinatorMessage, SESSION_PATH, type Signer, generateKeyPair, signRequest } from "@tessera/protocol";
import { fastSigner } from "./lib-fast-signer.js";

interface Input {
  url: string;
  count: number;
  heartbeatMs: number;
  model: string;
}

const { url, count, heartbeatMs, model } = workerData as Input;
const counters = { registered: 0, sessions: 0, heartbeatsOk: 0, heartbeatsFailed: 0, jobs: 0, maxHeartbeatGapMs: 0, maxHeartbeatRttMs: 0 };

async function post(signer: Signer, path: string, body: unknown): Promise<boolean> {
  const text = JSON.stringify(body);
  const res = await fetch(url + path, { method: "POST", headers: { ...signRequest(signer, { method: "POST", path, body: text }), "content-type": "application/json" }, body: text });
  await res.arrayBuffer();
  return res.ok;
}

async function runNode(): Promise<void> {
  const keys = generateKeyPair();
  const signer = fastSigner(keys.secretKeyHex);
  const ok = await post(signer, "/api/v1/nodes/register", {
    type: "register",
    public_key: keys.publicKeyHex,
    version: "sim",
    hardware: { cpu_cores: 8, ram_mb: 16384, gpus: [] },
    models: [{ id: model, backend: "sim" }],
    max_concurrency: 4,
  });
  if (!ok) throw new Error("registration refused");
  counters.registered++;
  const ws = new WebSocket(url.replace(/^http/, "ws") + SESSION_PATH, { headers: signRequest(signer, { method: "GET", path: SESSION_PATH }) });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  counters.sessions++;
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as CoordinatorMessage;
    if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong", sent_at: msg.sent_at }));
    else if (msg.type === "job.assign") {
      counters.jobs++;
      const id = msg.job_id;
      ws.send(JSON.stringify({ type: "job.accept", job_id: id }));
      ws.send(JSON.stringify({ type: "job.part", job_id: id, part: { type: "text-delta", text: "ok" } }));
      ws.send(JSON.stringify({ type: "job.part", job_id: id, part: { type: "usage", prompt_tokens: 5, completion_tokens: 1 } }));
      ws.send(JSON.stringify({ type: "job.part", job_id: id, part: { type: "finish", reason: "stop" } }));
    }
  });
  let last = 0;
  const beat = async () => {
    const sentAt = performance.now();
    if (last) counters.maxHeartbeatGapMs = Math.max(counters.maxHeartbeatGapMs, sentAt - last);
    last = sentAt;
    const good = await post(signer, "/api/v1/nodes/heartbeat", { type: "heartbeat", gpus: [], loaded_models: [model], active_jobs: 0, max_concurrency: 4, draining: false }).catch(() => false);
    counters.maxHeartbeatRttMs = Math.max(counters.maxHeartbeatRttMs, performance.now() - sentAt);
    if (good) counters.heartbeatsOk++;
    else counters.heartbeatsFailed++;
    setTimeout(beat, heartbeatMs * (0.9 + Math.random() * 0.2));
  };
  setTimeout(beat, Math.random() * heartbeatMs);
}

parentPort!.on("message", (msg: string) => {
  if (msg === "stats") parentPort!.postMessage({ ...counters });
});

for (let i = 0; i < count; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => runNode()));
}
parentPort!.postMessage({ ready: true, ...counters });
