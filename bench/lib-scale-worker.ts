/**
 * Worker thread of the `scale` bench: plays a slice of the simulated nodes. Each registers, holds a signed
 * WebSocket session (answers pings, accepts jobs and streams a short scripted answer) and sends a signed heartbeat
 * every interval with jitter. Posts its counters to the parent on request.
 *
 * It also judges its own punctuality, so that the coordinator is not blamed for the driver: each heartbeat's
 * lateness (when it left, against when its timer was due), and, when the coordinator marks a node offline (it closes
 * the session with 4001), whether that node's last heartbeat had left within the offline threshold before the mark
 * (a false mark: the coordinator's doing) or not (the driver fell behind: not the coordinator's).
 */
import { Agent, request } from "node:http";
import { parentPort, workerData } from "node:worker_threads";
import WebSocket from "ws";
import { type CoordinatorMessage, SESSION_PATH, type Signer, generateKeyPair, signRequest } from "@tessera/protocol";
import { wasmSchnorrSigner } from "@tessera/protocol/wasm-schnorr";

interface Input {
  url: string;
  count: number;
  heartbeatMs: number;
  /** The coordinator's offline threshold (`--offline-after`). */
  offlineAfterMs: number;
  model: string;
}

const { url, count, heartbeatMs, offlineAfterMs, model } = workerData as Input;
const counters = {
  registered: 0, sessions: 0, heartbeatsOk: 0, heartbeatsFailed: 0, jobs: 0, maxHeartbeatGapMs: 0, maxHeartbeatRttMs: 0,
  /** Offline marks whose node's last heartbeat had left within the threshold (the coordinator's fault), and the rest. */
  falseOfflineMarks: 0, driverLateOfflineMarks: 0,
  /** Each heartbeat's lateness: how long after its timer was due it left (ms), for the parent's percentiles. */
  latenessMs: [] as number[],
};
/** Counting starts when the parent says so (after every node has joined), and `stats` reports since then. */
let measuring = false;

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/**
 * A signed POST. `onSent` runs when the request has been handed to the kernel (the `finish` event): the moment it
 * left the driver, which on a busy driver is later than when it was asked for.
 */
function post(signer: Signer, path: string, body: unknown, onSent: () => void = () => {}): Promise<boolean> {
  const text = JSON.stringify(body);
  const headers = { ...signRequest(signer, { method: "POST", path, body: text }), "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) };
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method: "POST", headers, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve((res.statusCode ?? 500) < 300));
      res.on("error", reject);
    });
    req.on("finish", onSent);
    req.on("error", reject);
    req.end(text);
  });
}

async function runNode(): Promise<void> {
  const keys = generateKeyPair();
  const signer = wasmSchnorrSigner(keys.secretKeyHex);
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
  let last = 0;
  /** Opens the node's session; a node the coordinator marked offline (4001) opens a new one, as the daemon does. */
  const openSession = async (): Promise<void> => {
    const ws = new WebSocket(url.replace(/^http/, "ws") + SESSION_PATH, { headers: signRequest(signer, { method: "GET", path: SESSION_PATH }) });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    counters.sessions++;
    ws.on("close", (code) => {
      if (code !== 4001) return;
      if (measuring) {
        if (performance.now() - last < offlineAfterMs) counters.falseOfflineMarks++;
        else counters.driverLateOfflineMarks++;
      }
      openSession().catch(() => {});
    });
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
  };
  await openSession();
  let due = 0;
  const beat = async () => {
    const askedAt = performance.now();
    let sentAt = askedAt;
    const sent = () => {
      sentAt = performance.now();
      if (measuring) {
        counters.latenessMs.push(sentAt - due);
        if (last) counters.maxHeartbeatGapMs = Math.max(counters.maxHeartbeatGapMs, sentAt - last);
      }
      last = sentAt;
    };
    const heartbeat = { type: "heartbeat", gpus: [], loaded_models: [model], active_jobs: 0, max_concurrency: 4, draining: false };
    const good = await post(signer, "/api/v1/nodes/heartbeat", heartbeat, sent).catch(() => false);
    counters.maxHeartbeatRttMs = Math.max(counters.maxHeartbeatRttMs, performance.now() - sentAt);
    if (good) counters.heartbeatsOk++;
    else counters.heartbeatsFailed++;
    schedule(heartbeatMs * (0.9 + Math.random() * 0.2));
  };
  const schedule = (delayMs: number) => {
    due = performance.now() + delayMs;
    setTimeout(beat, delayMs);
  };
  schedule(Math.random() * heartbeatMs);
}

parentPort!.on("message", (msg: string) => {
  if (msg === "measure") {
    measuring = true;
    Object.assign(counters, { heartbeatsOk: 0, heartbeatsFailed: 0, maxHeartbeatGapMs: 0, maxHeartbeatRttMs: 0, falseOfflineMarks: 0, driverLateOfflineMarks: 0, latenessMs: [] });
  } else if (msg === "stats") parentPort!.postMessage({ ...counters });
});

for (let i = 0; i < count; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => runNode()));
}
parentPort!.postMessage({ ready: true, ...counters });
