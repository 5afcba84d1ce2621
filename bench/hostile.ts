/**
 * hostile: what unauthenticated, oversized input costs everyone else. A real coordinator and one daemon (embedded
 * engine, tiny generated model) serve one streaming chat; meanwhile three concurrent ~8 MB bodies of nested arrays
 * (`[[[[…]]]]`) without credentials go to each of POST /api/v1/jobs, /v1/chat/completions and
 * /api/v1/nodes/register (9 requests). Measured side by side in one run, with the same stream running through both
 * windows: /healthz p99 for 1.5 s before the attack and for 1.5 s from its start (longer if it lasts); each
 * hostile request's latency to its answer (from a process of its own, as another machine would send it); the
 * coordinator's resident memory (VmRSS) growth from before the attack to its peak during it. The same attack on a bare
 * Node server that answers 401 without reading gives the floor for answer latency on this machine, in the same run.
 *
 *   npm run bench -- hostile [--mib 8] [--copies 3] [--tokens 7000]
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ChildProcess, spawn } from "node:child_process";
import { SseDecoder } from "@tessera/protocol";
import { makeTinyModel, startCluster } from "@tessera/testkit";
import { fmt, percentile } from "./lib-stats.js";

const ROUTES = ["/api/v1/jobs", "/v1/chat/completions", "/api/v1/nodes/register"];

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m);
  return line ? Number(line[1]) / 1024 : NaN;
}

/**
 * The attacker, in a process of its own so that its writing does not stall the /healthz prober's event loop
 * (a real attacker is another machine). Each request streams its body 64 KiB at a time with backpressure and stops
 * once an answer has come; latency is to the response's status line. Plain JS, run with `node -e`: no tsx.
 */
const ATTACKER = `
const parentPort = { once: (e, f) => process.once(e, f), on: (e, f) => process.on(e, f), postMessage: (m) => process.send(m) };
const workerData = JSON.parse(process.argv[1]);
const { request } = require("node:http");
const { url, paths, copies, bytes } = workerData;
const half = Math.floor((bytes - 16) / 2);
const body = Buffer.from("[".repeat(half) + "]".repeat(half));
function post(base, path, payload) {
  const target = new URL(path, base);
  const started = performance.now();
  return new Promise((resolve) => {
    let answered = false;
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: "POST",
      headers: { "content-type": "application/json", "content-length": payload.length } }, (res) => {
      answered = true;
      const ms = performance.now() - started;
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      const finish = () => {
        let code;
        try { code = JSON.parse(Buffer.concat(chunks).toString()).error; if (code && typeof code === "object") code = code.code; }
        catch { code = "(not json)"; }
        resolve({ path, status: res.statusCode, ms, code: String(code) });
      };
      res.on("end", finish);
      res.on("error", finish);
    });
    req.on("error", (err) => { if (!answered) resolve({ path, status: 0, ms: performance.now() - started, code: "(" + (err.code || err.message) + ")" }); });
    (async () => {
      for (let at = 0; at < payload.length && !answered && !req.destroyed; at += 65536) {
        // Yield after every chunk, drained or not: the answer is read as soon as it comes, as it would be on an
        // attacker's own machine, instead of after this thread has copied megabytes into the kernel's buffers.
        if (!req.write(payload.subarray(at, at + 65536))) await new Promise((r) => req.once("drain", r));
        else await new Promise((r) => setImmediate(r));
      }
      if (!answered && !req.destroyed) req.end();
    })();
  });
}
parentPort.once("message", async (what) => {
  if (what === "warm") {
    for (const path of paths) await post(url, path, Buffer.from("[]"));
    parentPort.postMessage({ warm: true });
    parentPort.on("message", attack);
  }
});
async function attack(target) {
  const results = await Promise.all(paths.flatMap((path) => Array.from({ length: copies }, () => post(target, path, body))));
  parentPort.postMessage({ results, bodyBytes: body.length });
}
`;

type HostileResult = { path: string; status: number; ms: number; code: string };

let healthzFailures = 0;

/** One /healthz round trip in ms; a failed one (connection reset under load) counts its time to the failure. */
async function healthzOnce(baseUrl: string): Promise<number> {
  const started = performance.now();
  try {
    const res = await fetch(`${baseUrl}/healthz`);
    await res.arrayBuffer();
    if (!res.ok) healthzFailures++;
  } catch {
    healthzFailures++;
  }
  return performance.now() - started;
}

/** Probes /healthz back to back (10 ms apart) until `stop()` says so; returns the latencies. */
async function probe(baseUrl: string, stop: () => boolean): Promise<number[]> {
  const out: number[] = [];
  while (!stop()) {
    out.push(await healthzOnce(baseUrl));
    await new Promise((r) => setTimeout(r, 10));
  }
  return out;
}

async function stream(baseUrl: string, model: string, maxTokens: number, onFirstToken = () => {}): Promise<{ chunks: number; done: boolean; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "tell me a long story" }], max_tokens: maxTokens, stream: true }),
  });
  if (!res.ok) throw new Error(`stream: HTTP ${res.status} ${await res.text()}`);
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  let chunks = 0;
  let done = false;
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(text.decode(bytes, { stream: true }))) {
      if (event.data === "[DONE]") done = true;
      else if (++chunks === 2) onFirstToken(); // the first chunk is the role, the second the first token
    }
  }
  return { chunks, done, ms: performance.now() - started };
}

/** A bare HTTP server in a process of its own that answers 401 at once and never reads the body: the floor. */
async function startBareServer(): Promise<{ url: string; process: ChildProcess }> {
  const code = `require("node:http").createServer((req, res) => { req.pause(); res.writeHead(401, { "content-type": "application/json" }); ` +
    `res.end('{"error":"unauthorized"}'); res.on("finish", () => setTimeout(() => req.socket.destroy(), 1000)); })` +
    `.listen(0, "127.0.0.1", function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve) => child.stdout.once("data", (d: Buffer) => resolve(d.toString().trim())));
  return { url: `http://127.0.0.1:${port}`, process: child };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { mib: { type: "string", default: "8" }, copies: { type: "string", default: "3" }, tokens: { type: "string", default: "7000" } },
  });
  const mib = Number(values.mib);
  const copies = Number(values.copies);
  const tokens = Number(values.tokens);
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-hostile-"));
  const modelPath = join(dir, "hostile-tiny.gguf");
  // A long context so that one stream outlasts the whole measurement (baseline and attack both run beside it).
  await makeTinyModel({ path: modelPath, seed: 3, contextLength: 8192 });
  const cluster = await startCluster({ nodes: 1, modelPath, coordinatorArgs: ["--log-level", "warn"], env: { TESSERA_LOG_LEVEL: "warn" } });
  const pid = cluster.coordinator.pid;
  // Just under the 8 MiB client body cap, balanced so it is valid JSON nested ~4 M deep.
  const bytes = mib * 1024 * 1024;
  process.stdout.write(`hostile: ${copies} × ${(bytes / 1048576).toFixed(2)} MiB nested-array bodies without credentials to each of ${ROUTES.join(", ")}\n`);
  const attacker = spawn(process.execPath, ["-e", ATTACKER, JSON.stringify({ url: cluster.url, paths: ROUTES, copies, bytes })], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const fromAttacker = () => new Promise<{ results?: HostileResult[] }>((resolve, reject) => {
    attacker.once("message", resolve);
    attacker.once("error", reject);
    attacker.once("exit", (code) => reject(new Error(`the attacker exited (${code})`)));
  });
  try {
    await stream(cluster.url, cluster.model!, 8); // warm-up: session, JIT, the model's first load
    for (let i = 0; i < 20; i++) await healthzOnce(cluster.url);
    attacker.send("warm"); // the attacker's HTTP client path warmed too
    await fromAttacker();
    healthzFailures = 0;

    // One stream runs through both windows, so "before" and "during" differ only by the attack.
    let firstToken!: () => void;
    const underWay = new Promise<void>((r) => (firstToken = r));
    const streaming = stream(cluster.url, cluster.model!, tokens, firstToken);
    let streamEndedAt = Infinity;
    void streaming.then(() => (streamEndedAt = performance.now()), () => {});
    await underWay;

    // The floor on this machine, in the same run and beside the same stream: the same attack on a bare Node server (its
    // own process) that answers 401 at once without reading a byte, once before the coordinator is attacked and once
    // after. What the attacker's thread spends pushing megabytes into loopback buffers before it reads an answer
    // shows there too, and is no cost of the coordinator's.
    const attackBare = async () => {
      const bare = await startBareServer();
      attacker.send(bare.url);
      const results = (await fromAttacker()).results!;
      bare.process.kill();
      return results;
    };
    // /healthz is probed while the bare server is attacked too: what the attack costs the machine (two cores shared
    // by the attacker, the prober, the engine and the coordinator) when none of it is aimed at the coordinator.
    let bareOver = false;
    const bareProbe = probe(cluster.url, () => bareOver);
    const floorBefore = await attackBare();
    await new Promise((r) => setTimeout(r, 1500));
    bareOver = true;
    const duringBareAttack = await bareProbe;

    let stopBaseline = false;
    const baselineRun = probe(cluster.url, () => stopBaseline);
    await new Promise((r) => setTimeout(r, 1500));
    stopBaseline = true;
    const baseline = await baselineRun;
    const rssBefore = rssMb(pid);
    healthzFailures = 0;

    let attackOver = false;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(pid))), 20);
    const during = probe(cluster.url, () => attackOver);
    const attackStarted = performance.now();
    attacker.send(cluster.url);
    const results = (await fromAttacker()).results!;
    const attackEndedAt = performance.now();
    const attackMs = attackEndedAt - attackStarted;
    const overlapped = streamEndedAt > attackEndedAt;
    // Probe as long as before (1.5 s from the attack's start), and at least 300 ms past the last answer: work the
    // attack queued may still be running.
    await new Promise((r) => setTimeout(r, Math.max(300, 1500 - attackMs)));
    attackOver = true;
    const duringLatencies = await during;
    const failedProbes = healthzFailures;
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, rssMb(pid));
    await new Promise((r) => setTimeout(r, 1500)); // refused connections linger 1 s: let them go first
    const floorAfter = await attackBare();
    const streamed = await streaming;

    for (const r of results) {
      const ok = r.status >= 400 && r.status < 500 && r.ms <= 100;
      process.stdout.write(`  ${r.path.padEnd(24)} ${r.status} ${r.code.padEnd(18)} ${fmt(r.ms, 1).padStart(9)} ms ${ok ? "ok" : "MISS (want 4xx within 100 ms)"}\n`);
    }
    const p99Before = percentile(baseline, 99);
    const p99During = percentile(duringLatencies, 99);
    const answered4xx = results.filter((r) => r.status >= 400 && r.status < 500).length;
    const within100 = results.filter((r) => r.status >= 400 && r.status < 500 && r.ms <= 100).length;
    process.stdout.write(
      `attack took ${fmt(attackMs, 0)} ms; ${answered4xx}/${results.length} answered 4xx, ${within100}/${results.length} within 100 ms (slowest ${fmt(Math.max(...results.map((r) => r.ms)), 1)} ms)\n` +
        `/healthz p99 before ${fmt(p99Before, 2)} ms (${baseline.length} probes), during ${fmt(p99During, 2)} ms (${duringLatencies.length} probes, ${failedProbes} failed, max ${fmt(Math.max(...duringLatencies), 1)} ms)\n` +
        `coordinator VmRSS before ${fmt(rssBefore, 1)} MB, peak during ${fmt(rssPeak, 1)} MB\n` +
        `stream: ${streamed.chunks} chunks in ${fmt(streamed.ms, 0)} ms, ${streamed.done ? "completed with [DONE]" : "DID NOT COMPLETE"}, ${overlapped ? "still running when the last hostile answer came" : "finished before the attack did"}\n`,
    );
    const slowest = Math.max(...results.map((r) => r.ms));
    const floorRuns = [floorBefore, floorAfter].map((f) => Math.max(...f.map((r) => r.ms)));
    const floorSlowest = Math.min(...floorRuns);
    process.stdout.write(`bare server (floor), same attack before and after: slowest answer ${floorRuns.map((ms) => fmt(ms, 1)).join(" and ")} ms\n`);
    process.stdout.write(`RESULT hostile_answered_4xx_within_100ms ${within100}/${results.length}\n`);
    process.stdout.write(`RESULT hostile_slowest_answer_ms ${fmt(slowest, 1)}\n`);
    process.stdout.write(`RESULT hostile_slowest_answer_vs_bare_server ${fmt(slowest / floorSlowest, 2)}\n`);
    const p99Bare = percentile(duringBareAttack, 99);
    process.stdout.write(`/healthz p99 while the same attack hit the bare server instead: ${fmt(p99Bare, 2)} ms (${duringBareAttack.length} probes)\n`);
    process.stdout.write(`RESULT hostile_healthz_p99_ratio ${fmt(p99During / p99Before, 2)}\n`);
    process.stdout.write(`RESULT hostile_healthz_p99_ratio_attack_elsewhere ${fmt(p99Bare / p99Before, 2)}\n`);
    process.stdout.write(`RESULT hostile_rss_growth_mb ${fmt(rssPeak - rssBefore, 1)}\n`);
    process.stdout.write(`RESULT hostile_stream_completed ${streamed.done ? 1 : 0}\n`);
  } finally {
    attacker.kill();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
