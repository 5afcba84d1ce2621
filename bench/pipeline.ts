/**
 * pipeline: a model split over 1, 2, 3 and 4 stage daemons on loopback (real processes, activations relayed
 * through the coordinator as binary WebSocket frames). For each split it measures single-stream decode tokens/s
 * through the OpenAI endpoint and compares it with the bound 1 / (Σ stage compute + hops × hop latency), where
 *   - stage compute: what the stage nodes themselves measured around `Stage.forward` during the same decode
 *     (reported in each answer frame, summarised in the coordinator's "sharded request timing" log line);
 *   - hop latency: a loopback WebSocket round trip of one activation-sized binary frame to an echo server in
 *     ANOTHER process (bench/lib-echo-server.ts), measured right after each decode with the same processes up: the
 *     two process wake-ups and the loopback TCP a hop cannot avoid, and no Tessera code. Each round trip follows an
 *     idle pause as long as that decode's token time, because that is how long a stage (and the coordinator) sleeps
 *     between its messages in the pipeline, and waking a process that has slept for milliseconds costs several
 *     times a back-to-back round trip on a virtual machine (here 0.08 ms back to back, 0.26 ms after 6 ms idle);
 *     the back-to-back figure is printed beside it;
 *   - hops: one coordinator → stage → coordinator round trip per stage.
 * Excess per token = measured token time − Σ compute − hops × hop latency. The per-hop overhead (framing + relay)
 * reported is the least-squares slope of the excess over the number of hops, the fixed part its intercept. The
 * coordinator's timing line also splits each token: per stage round trip, node time (decode + forward + sampling +
 * encode), compute, and the coordinator's own time per token (relay, sampling, detokenizing, emitting).
 *
 *   npm run bench -- pipeline [--tokens 64] [--rounds 3]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { SseDecoder } from "@tessera/protocol";
import { loadStage, readModelConfig } from "@tessera/node";
import { type Cluster, makeTinyModel, startCluster, waitUntil } from "@tessera/testkit";
import { fmt, mean, percentile } from "./lib-stats.js";

const MODEL = "pipeline-50m";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i !== -1 ? Number(process.argv[i + 1]) : fallback;
}

function spansOf(cluster: Cluster): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const n of cluster.nodes) {
    const all = [...n.process.logText.matchAll(/layers \[(\d+), (\d+)\) of \S+ loaded/g)];
    const last = all[all.length - 1];
    if (last) out.push([Number(last[1]), Number(last[2])]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** Decode tokens/s of one stream: tokens after the first over the time since the first. */
async function decodeRate(url: string, maxTokens: number): Promise<{ tps: number; tokens: number }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Tell me a long story." }], max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status} ${await res.text()}`);
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  const times: number[] = [];
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(text.decode(bytes, { stream: true }))) {
      if (event.data === "[DONE]") continue;
      const chunk = JSON.parse(event.data) as { choices: { delta?: { content?: string } }[] };
      if (chunk.choices[0]?.delta?.content) times.push(performance.now());
    }
  }
  if (times.length < 3) throw new Error(`only ${times.length} tokens streamed`);
  return { tps: ((times.length - 1) * 1000) / (times[times.length - 1]! - times[0]!), tokens: times.length };
}

/** Σ over the spans of the one-token forward time at decode positions, ms. */
function stageCompute(path: string, spans: Array<[number, number]>, steps: number): number {
  let total = 0;
  for (const [start, end] of spans) {
    const stage = loadStage({ path, start, end });
    const prompt = 16;
    const input = stage.isFirst ? new Int32Array(prompt).fill(1) : new Float32Array(prompt * stage.hiddenSize).fill(0.01);
    stage.forward("b", input, Array.from({ length: prompt }, (_, i) => i));
    const one = stage.isFirst ? Int32Array.of(1) : new Float32Array(stage.hiddenSize).fill(0.01);
    const samples: number[] = [];
    // Warm-up (JIT, caches) first; the median of the timed steps resists the shared box's noise.
    for (let i = 0; i < 2 * steps; i++) {
      const t0 = performance.now();
      stage.forward("b", one, [prompt + i]);
      if (i >= steps) samples.push(performance.now() - t0);
    }
    total += percentile(samples, 50);
  }
  return total;
}

interface EchoProcess {
  /**
   * Loopback round trips (ms) of a `bytes` binary frame to another process, WebSocket and raw TCP, each after
   * `idleMs` of doing nothing: the median back to back (idleMs 0), else the mean (a rate is a mean).
   */
  measure(bytes: number, idleMs?: number, samples?: number): Promise<{ ws: number; tcp: number }>;
  stop(): void;
}

async function startEcho(): Promise<EchoProcess> {
  const script = fileURLToPath(new URL("./lib-echo-server.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["pipe", "pipe", "inherit"] });
  const ports = await new Promise<[number, number]>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /PORTS (\d+) (\d+)/.exec(buf);
      if (m) resolve([Number(m[1]), Number(m[2])]);
    });
    child.once("exit", (code) => reject(new Error(`echo server exited (${code})`)));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${ports[0]}`, { perMessageDeflate: false });
  await new Promise((r) => ws.once("open", r));
  const tcp = connect(ports[1], "127.0.0.1");
  tcp.setNoDelay(true);
  await new Promise((r) => tcp.once("connect", r));
  return {
    async measure(bytes, idleMs = 0, samples = idleMs > 0 ? 150 : 300) {
      const payload = Buffer.alloc(bytes, 1);
      const wsMs: number[] = [];
      const tcpMs: number[] = [];
      const pause = () => (idleMs > 0 ? new Promise((r) => setTimeout(r, idleMs)) : undefined);
      for (let i = 0; i < samples; i++) {
        await pause();
        let t0 = performance.now();
        ws.send(payload);
        await new Promise((r) => ws.once("message", r));
        wsMs.push(performance.now() - t0);
        await pause();
        t0 = performance.now();
        tcp.write(payload);
        let got = 0;
        await new Promise<void>((r) => {
          const on = (d: Buffer) => {
            got += d.length;
            if (got >= bytes) {
              tcp.off("data", on);
              r();
            }
          };
          tcp.on("data", on);
        });
        tcpMs.push(performance.now() - t0);
      }
      const warm = Math.floor(samples / 6);
      const summary = (ms: number[]) => (idleMs > 0 ? mean(ms.slice(warm)) : percentile(ms.slice(warm), 50));
      return { ws: summary(wsMs), tcp: summary(tcpMs) };
    },
    stop() {
      ws.close();
      tcp.destroy();
      child.stdin.end();
    },
  };
}

/**
 * Run-queue wait of a process's main thread (ns, cumulative; /proc/<pid>/schedstat field 2): the time it was ready
 * to run but waited for a CPU. Per token, it is the wake-up cost a hop pays on a shared box. NaN where unavailable.
 */
function runQueueWaitNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]);
  } catch {
    return NaN;
  }
}

interface Timing {
  decode_tokens: number;
  token_ms: number;
  coordinator_ms: number;
  sample_ms: number;
  emit_ms: number;
  stages: Array<{ layers: string; rtt_ms: number; node_ms: number; compute_ms: number }>;
}

/** The coordinator's "sharded request timing" lines logged since `from` (one per request). */
function timingsSince(cluster: Cluster, from: number): Timing[] {
  const out: Timing[] = [];
  for (const line of cluster.coordinator.logText.slice(from).split("\n")) {
    if (!line.includes("sharded request timing")) continue;
    try {
      out.push((JSON.parse(line) as { timing: Timing }).timing);
    } catch {
      // a partial line at the end of the log
    }
  }
  return out;
}

export async function main(): Promise<void> {
  const tokens = arg("tokens", 64);
  const rounds = arg("rounds", 3);
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-pipeline-"));
  try {
    const modelPath = join(dir, `${MODEL}.gguf`);
    const decoy = join(dir, "decoy.gguf");
    await makeTinyModel({ path: modelPath, preset: "50m", seed: 5, vocab: "spm" });
    await makeTinyModel({ path: decoy, seed: 1, vocab: "bytes" });
    const cfg = readModelConfig(modelPath);
    const frameBytes = cfg.nEmbd * 4 + 96;
    const echo = await startEcho();
    const idle = await echo.measure(frameBytes);
    console.log(`model: ${cfg.nLayer} layers, n_embd ${cfg.nEmbd}; idle loopback round trip to another process (${frameBytes} B): ws ${fmt(idle.ws)} ms, tcp ${fmt(idle.tcp)} ms`);
    console.log("stages | tok/s  | Σ compute ms | hop ms (ws/tcp) | back to back | bound tok/s | vs bound | excess/token ms | in-process compute ms");
    const excess: number[] = [];
    const ratios: number[] = [];
    const breakdown: string[] = [];
    for (const k of [1, 2, 3, 4]) {
      const cluster = await startCluster({
        nodes: k,
        nodeArgs: ["--backend", "embedded", "--model", decoy, "--stage-model", modelPath],
        env: { TESSERA_SHARD_REPLICAS: "1" },
      });
      try {
        await waitUntil(() => {
          const s = spansOf(cluster);
          return s.length === k && s[0]![0] === 0 && s.every((x, i) => i === 0 || s[i - 1]![1] === x[0]) && s[k - 1]![1] === cfg.nLayer;
        }, 120_000);
        const spans = spansOf(cluster);
        await decodeRate(cluster.url, 8); // warm-up: tokenizer load, JIT
        const logFrom = cluster.coordinator.logText.length;
        const pids = [cluster.coordinator.pid, ...cluster.nodes.map((n) => n.process.pid)];
        const wait0 = pids.map(runQueueWaitNs);
        const rates: number[] = [];
        let streamed = 0;
        for (let r = 0; r < rounds; r++) {
          const run = await decodeRate(cluster.url, tokens);
          rates.push(run.tps);
          streamed += run.tokens;
        }
        const waitMs = pids.map((pid, i) => (runQueueWaitNs(pid) - wait0[i]!) / 1e6 / streamed);
        const tps = mean(rates);
        await waitUntil(() => timingsSince(cluster, logFrom).length >= rounds, 10_000);
        const timings = timingsSince(cluster, logFrom);
        const hop = await echo.measure(frameBytes, 1000 / tps);
        const backToBack = await echo.measure(frameBytes);
        const compute = mean(timings.map((t) => t.stages.reduce((a, s) => a + s.compute_ms, 0)));
        const inProcess = stageCompute(modelPath, spans, 48);
        const boundTps = 1000 / (compute + k * hop.ws);
        const overhead = 1000 / tps - compute - k * hop.ws;
        excess.push(overhead);
        ratios.push(tps / boundTps);
        console.log(`${String(k).padStart(6)} | ${fmt(tps, 1).padStart(6)} | ${fmt(compute, 2).padStart(12)} | ${`${fmt(hop.ws)}/${fmt(hop.tcp)}`.padStart(15)} | ${`${fmt(backToBack.ws)}/${fmt(backToBack.tcp)}`.padStart(12)} | ${fmt(boundTps, 1).padStart(11)} | ${fmt(tps / boundTps, 3).padStart(8)} | ${fmt(overhead, 3).padStart(15)} | ${fmt(inProcess, 2)}  spans ${spans.map(([a, b]) => `[${a},${b})`).join(" ")}`);
        const avg = (f: (t: Timing) => number) => mean(timings.map(f));
        const per = spans.map((_, i) => {
          const rtt = avg((t) => t.stages[i]?.rtt_ms ?? NaN);
          const node = avg((t) => t.stages[i]?.node_ms ?? NaN);
          const comp = avg((t) => t.stages[i]?.compute_ms ?? NaN);
          return `${timings[0]?.stages[i]?.layers ?? "?"} rtt ${fmt(rtt)} = compute ${fmt(comp)} + node framing ${fmt(node - comp)} + transport ${fmt(rtt - node)}`;
        });
        breakdown.push(`${k} stage(s): token ${fmt(avg((t) => t.token_ms))} ms = Σ rtt + coordinator ${fmt(avg((t) => t.coordinator_ms))} (sample ${fmt(avg((t) => t.sample_ms))}, detokenize+emit ${fmt(avg((t) => t.emit_ms))}); ${per.join("; ")}; run-queue wait per token: coordinator ${fmt(waitMs[0]!)}, nodes ${waitMs.slice(1).map((w) => fmt(w)).join(" ")} (Σ ${fmt(waitMs.reduce((a, b) => a + b, 0))})`);
      } finally {
        await cluster.stop();
      }
    }
    echo.stop();
    console.log("where a decode token's time goes (coordinator's timing log, means over the measured requests; ms):");
    for (const line of breakdown) console.log(`  ${line}`);
    const ks = [1, 2, 3, 4];
    const kMean = mean(ks);
    const eMean = mean(excess);
    const slope = ks.reduce((a, k, i) => a + (k - kMean) * (excess[i]! - eMean), 0) / ks.reduce((a, k) => a + (k - kMean) ** 2, 0);
    console.log(`fixed per-token cost (intercept): ${fmt(eMean - slope * kMean, 3)} ms`);
    console.log(`RESULT pipeline_hop_overhead_ms ${fmt(slope, 3)}`);
    console.log(`RESULT pipeline_vs_bound ${fmt(Math.min(...ratios), 3)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
