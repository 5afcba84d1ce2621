/**
 * pipeline: a model split over 1, 2, 3 and 4 stage daemons on loopback (real processes, activations relayed
 * through the coordinator as binary WebSocket frames). For each split it measures single-stream decode tokens/s
 * through the OpenAI endpoint and compares it with the bound 1 / (Σ stage compute + hops × hop latency), where
 *   - stage compute: what the stage nodes themselves measured around `Stage.forward` during the same decode
 *     (reported in each answer frame, summarised in the coordinator's "sharded request timing" log line);
 *   - hop latency: a loopback WebSocket round trip of one activation-sized binary frame to an echo server in
 *     ANOTHER process (bench/lib-echo-server.ts), measured right after each decode round with the same processes up: the
 *     two process wake-ups and the loopback TCP a hop cannot avoid, and no Tessera code. The round trips keep a
 *     stage's rhythm: the echo sleeps between frames for the token time less a stage's mean compute, then busy-works
 *     that compute before answering while the sender sleeps (the work is subtracted). Waking a process that has
 *     slept for milliseconds costs several times a back-to-back round trip on a virtual machine (here 0.08 ms back
 *     to back, 0.26 ms after 6 ms idle), so a back-to-back echo would understate every hop; that figure is printed
 *     beside it;
 *   - hops: one coordinator → stage → coordinator round trip per stage.
 * "vs bound" is the mean over the rounds of each round's tokens/s against its own bound (the round's compute and
 * the hop latency measured right after it). Excess per token = measured token time − Σ compute − hops × hop latency. The per-hop overhead (framing + relay)
 * reported is the least-squares slope of the excess over the number of hops, the fixed part its intercept. The
 * coordinator's timing line also splits each token: per stage round trip, node time (decode + forward + sampling +
 * encode), compute, and the coordinator's own time per token (relay, sampling, detokenizing, emitting).
 *
 *   npm run bench -- pipeline [--tokens 64] [--rounds 5] [--weights f16|q4_k_m]
 *
 * --weights q4_k_m runs the same model quantised (feed-forward width 1536, K-quant rows are 256 long): about 2.3x less
 * compute per token, so the hops weigh more against it; the RESULT names then end in `_q4_k_m`.
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
import { type Cluster, makeTinyModel, startCluster, type TinyWeightType, waitUntil } from "@tessera/testkit";
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

/**
 * Σ over the spans of the one-token forward time at decode positions, each span timed alone in this process, ms.
 * Informational only (the bound uses what the nodes measured): a span timed alone keeps its weights in cache between
 * tokens, so on a memory-bound machine it reads up to 2x lower than the same span inside the running pipeline.
 */
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
  /** Median back-to-back loopback round trips (ms) of a `bytes` binary frame to another process: WebSocket and raw TCP. */
  backToBack(bytes: number): Promise<{ ws: number; tcp: number }>;
  /**
   * Mean WebSocket hop latency (ms) with a stage's rhythm: the echo process sleeps `idleMs` between frames, then works
   * `workMs` (a busy loop) before answering while this side sleeps; the work is subtracted. What is left is what a
   * hop costs a pipeline without Tessera's code: two wake-ups after sleeps as long as the pipeline's, loopback TCP and
   * ws framing.
   */
  paced(bytes: number, idleMs: number, workMs: number): Promise<number>;
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
  const wsRoundTrip = async (payload: Buffer) => {
    const t0 = performance.now();
    ws.send(payload);
    await new Promise((r) => ws.once("message", r));
    return performance.now() - t0;
  };
  const tcpRoundTrip = async (payload: Buffer) => {
    const t0 = performance.now();
    tcp.write(payload);
    let got = 0;
    await new Promise<void>((r) => {
      const on = (d: Buffer) => {
        got += d.length;
        if (got >= payload.length) {
          tcp.off("data", on);
          r();
        }
      };
      tcp.on("data", on);
    });
    return performance.now() - t0;
  };
  return {
    async backToBack(bytes) {
      const payload = Buffer.alloc(bytes, 0);
      const wsMs: number[] = [];
      const tcpMs: number[] = [];
      for (let i = 0; i < 300; i++) {
        wsMs.push(await wsRoundTrip(payload));
        tcpMs.push(await tcpRoundTrip(payload));
      }
      return { ws: percentile(wsMs.slice(50), 50), tcp: percentile(tcpMs.slice(50), 50) };
    },
    async paced(bytes, idleMs, workMs) {
      const payload = Buffer.alloc(bytes, 0);
      payload.writeUInt32LE(Math.round(workMs * 1000), 0);
      const hops: number[] = [];
      for (let i = 0; i < 120; i++) {
        await new Promise((r) => setTimeout(r, idleMs));
        hops.push((await wsRoundTrip(payload)) - workMs);
      }
      return mean(hops.slice(20));
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
  const rounds = arg("rounds", 5);
  const w = process.argv.indexOf("--weights");
  const weights = (w === -1 ? "f16" : process.argv[w + 1]) as TinyWeightType;
  if (weights !== "f16" && weights !== "q4_k_m") throw new Error(`--weights must be f16 or q4_k_m, got ${weights}`);
  const suffix = weights === "f16" ? "" : `_${weights}`;
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-pipeline-"));
  try {
    const modelPath = join(dir, `${MODEL}.gguf`);
    const decoy = join(dir, "decoy.gguf");
    await makeTinyModel({ path: modelPath, preset: "50m", seed: 5, vocab: "spm", weightType: weights, ...(weights === "q4_k_m" ? { feedForwardLength: 1536 } : {}) });
    await makeTinyModel({ path: decoy, seed: 1, vocab: "bytes" });
    const cfg = readModelConfig(modelPath);
    const frameBytes = cfg.nEmbd * 4 + 96;
    const echo = await startEcho();
    const idle = await echo.backToBack(frameBytes);
    console.log(`model: ${cfg.nLayer} layers, n_embd ${cfg.nEmbd}; idle loopback round trip to another process (${frameBytes} B): ws ${fmt(idle.ws)} ms, tcp ${fmt(idle.tcp)} ms`);
    console.log("stages | tok/s  | Σ compute ms | hop ms (paced) | b2b ws/tcp   | bound tok/s | vs bound | excess/token ms | Σ span alone ms");
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
        // Warm-up as long as a measured round: tokenizer load, JIT, and the stages' one-time growth (KV cache blocks,
        // WebAssembly memory, and the GCs that growth sets off) are paid before measuring.
        await decodeRate(cluster.url, tokens);
        const logFrom = cluster.coordinator.logText.length;
        const pids = [cluster.coordinator.pid, ...cluster.nodes.map((n) => n.process.pid)];
        const rates: number[] = [];
        const hops: number[] = [];
        const roundRatios: number[] = [];
        const waitedNs = pids.map(() => 0);
        let streamed = 0;
        for (let r = 0; r < rounds; r++) {
          const wait0 = pids.map(runQueueWaitNs);
          const run = await decodeRate(cluster.url, tokens);
          pids.forEach((pid, i) => (waitedNs[i]! += runQueueWaitNs(pid) - wait0[i]!));
          rates.push(run.tps);
          streamed += run.tokens;
          // The hop latency right after each round, so both see the machine in the same state, with the round's
          // rhythm: a stage sleeps for the token time less its own compute, then computes while the coordinator sleeps.
          await waitUntil(() => timingsSince(cluster, logFrom).length > r, 10_000);
          const roundCompute = timingsSince(cluster, logFrom)[r]!.stages.reduce((a, s) => a + s.compute_ms, 0);
          const hop = await echo.paced(frameBytes, Math.max(0, 1000 / run.tps - roundCompute / k), roundCompute / k);
          hops.push(hop);
          // Each round against its own bound: the machine's state drifts from second to second on a shared box.
          roundRatios.push(run.tps / (1000 / (roundCompute + k * hop)));
        }
        const waitMs = waitedNs.map((ns) => ns / 1e6 / streamed);
        const tps = mean(rates);
        const hop = mean(hops);
        const timings = timingsSince(cluster, logFrom);
        const compute = mean(timings.map((t) => t.stages.reduce((a, s) => a + s.compute_ms, 0)));
        const backToBack = await echo.backToBack(frameBytes);
        const inProcess = stageCompute(modelPath, spans, 48);
        const boundTps = 1000 / (compute + k * hop);
        const overhead = 1000 / tps - compute - k * hop;
        excess.push(overhead);
        const ratio = mean(roundRatios);
        ratios.push(ratio);
        console.log(`${String(k).padStart(6)} | ${fmt(tps, 1).padStart(6)} | ${fmt(compute, 2).padStart(12)} | ${fmt(hop).padStart(15)} | ${`${fmt(backToBack.ws)}/${fmt(backToBack.tcp)}`.padStart(12)} | ${fmt(boundTps, 1).padStart(11)} | ${fmt(ratio, 3).padStart(8)} | ${fmt(overhead, 3).padStart(15)} | ${fmt(inProcess, 2)}  spans ${spans.map(([a, b]) => `[${a},${b})`).join(" ")}`);
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
    console.log(`RESULT pipeline_hop_overhead_ms${suffix} ${fmt(slope, 3)}`);
    console.log(`RESULT pipeline_vs_bound${suffix} ${fmt(Math.min(...ratios), 3)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
