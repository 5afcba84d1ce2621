/**
 * gateway: what Tessera adds on the way to a backend. An OpenAI-compatible fake backend emits tokens at a fixed
 * rate; the same streaming request goes to it directly and through coordinator + daemon (real processes),
 * interleaved round by round, at 1 and 64 concurrent streams. Beside throughput and time to first token it prints the
 * CPU each side burns per 1,000 tokens (the bench process, which is the client and the fake backend, and on Tessera's
 * side the coordinator and the daemon, from /proc on Linux): on a small machine the two Tessera processes compete with
 * the backend and the client for the same cores, so their CPU per token is what throughput at 64 streams is made of,
 * and it moves much less than wall time with the machine's other load.
 *
 * Rounds alternate which side goes first (ABBA), so each side in turn runs right after itself (the last round's
 * bookkeeping still in flight) and after the other (its kept-alive connections to the backend, idle for two rounds,
 * closed: a server that announces no idle timeout, as vLLM's and the fake's do not, has them kept 4 s). Before a
 * concurrency's rounds each side runs one round at that concurrency, uncounted, so the pools and code paths of that
 * many streams are warm.
 *
 * A round at 64 streams lasts until its slowest stream ends, so its throughput follows that round's last first token,
 * which one stall anywhere on the machine moves by a hundred milliseconds: the 64-stream ratio is over 6 rounds by
 * default (3 rounds spread it 0.936-0.969 in three runs of the same build), and one stream's over 30.
 *
 * The fake backend runs in a process of its own (bench/lib-fake-backend.ts), as a real backend does, so the direct
 * path is client → backend process → client and Tessera's adds the coordinator and the daemon between them.
 * `--backend-in-process` puts it in the bench's own process instead (the layout before 2026-12-06, kept to compare
 * with older figures): there the direct client calls a server in its own event loop and crosses no process boundary
 * at all, while Tessera's path crosses six.
 *
 *   npm run bench -- gateway [--tokens 256] [--rate 100] [--rounds 6] [--only-c64] [--backend-in-process]
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SseDecoder } from "@tessera/protocol";
import { startCluster, startFakeOpenAICompatible } from "@tessera/testkit";
import { cpuProfileFlags } from "./lib-cpu-profile.js";
import { processCpuSeconds } from "./lib-process-cpu.js";
import { fmt, percentile } from "./lib-stats.js";

interface StreamResult {
  ttftMs: number;
  tokens: number;
}

const MODEL = "bench-model";

async function oneStream(baseUrl: string, maxTokens: number): Promise<StreamResult> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "count" }], max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok) throw new Error(`${baseUrl}: HTTP ${res.status} ${await res.text()}`);
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  let ttftMs = NaN;
  let chunks = 0;
  let usageTokens: number | undefined;
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(text.decode(bytes, { stream: true }))) {
      if (event.data === "[DONE]") continue;
      const chunk = JSON.parse(event.data) as { choices: { delta?: { content?: string } }[]; usage?: { completion_tokens: number } };
      if (chunk.usage) usageTokens = chunk.usage.completion_tokens;
      if (chunk.choices[0]?.delta?.content) {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        chunks++;
      }
    }
  }
  return { ttftMs, tokens: usageTokens ?? chunks };
}

async function round(baseUrl: string, concurrency: number, maxTokens: number): Promise<{ results: StreamResult[]; wallMs: number }> {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: concurrency }, () => oneStream(baseUrl, maxTokens)));
  return { results, wallMs: performance.now() - started };
}

/**
 * CPU seconds so far of this process and the backend's (the client and the fake backend, one process or two), the
 * coordinator and the daemon (NaN off Linux).
 */
function cpuNow(
  cluster: { coordinator: { pid: number }; nodes: { process: { pid: number } }[] },
  backendPid: number | undefined,
): { bench: number; coordinator: number; daemon: number } {
  const usage = process.cpuUsage();
  const backend = backendPid === undefined ? 0 : (processCpuSeconds(backendPid) ?? NaN);
  return {
    bench: (usage.user + usage.system) / 1e6 + backend,
    coordinator: processCpuSeconds(cluster.coordinator.pid) ?? NaN,
    daemon: processCpuSeconds(cluster.nodes[0]!.process.pid) ?? NaN,
  };
}

interface Backend {
  url: string;
  /** The backend's own process, or undefined when it runs in this one. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** The fake backend, in its own process (bench/lib-fake-backend.ts) or, with `inProcess`, in this one. */
async function startBackend(rate: number, maxTokens: number, inProcess: boolean): Promise<Backend> {
  if (inProcess) {
    const words = Array.from({ length: maxTokens * 2 }, (_, i) => `w${i}`).join(" ");
    const fake = await startFakeOpenAICompatible({ flavour: "vllm", models: [MODEL], behaviour: { tokensPerSecond: rate, reply: words } });
    return { url: fake.url, pid: undefined, stop: () => fake.http.close() };
  }
  const script = fileURLToPath(new URL("./lib-fake-backend.ts", import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, script, "--model", MODEL, "--rate", String(rate), "--tokens", String(maxTokens)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the fake backend exited (${code}) before it listened`)));
    child.stdout.on("data", (d: Buffer) => {
      const m = /ready (\S+)/.exec(String(d));
      if (m) resolve(m[1]!);
    });
  });
  return {
    url,
    pid: child.pid,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
}

export async function main(args: string[]): Promise<void> {
  const maxTokens = flag(args, "tokens", 256);
  const rate = flag(args, "rate", 100);
  const rounds = flag(args, "rounds", 6);
  const only = args.includes("--only-c64") ? [64] : [1, 64];
  const inProcess = args.includes("--backend-in-process");
  const fake = await startBackend(rate, maxTokens, inProcess);
  const cluster = await startCluster({
    nodes: 1,
    nodeArgs: ["--backend", "vllm", "--vllm-host", fake.url, "--max-concurrency", "128"],
    coordinatorArgs: ["--rate-limit", "1000000", "--log-level", "warn"],
    env: { TESSERA_LOG_LEVEL: "warn" },
    // GATEWAY_PROF=<dir> writes CPU profiles of the coordinator and the daemon there.
    nodeFlags: { coordinator: cpuProfileFlags("GATEWAY_PROF"), node: cpuProfileFlags("GATEWAY_PROF") },
  });
  const targets = { direct: fake.url, tessera: cluster.url };
  process.stdout.write(
    `gateway: fake backend ${inProcess ? "in the bench's process" : "in its own process"} at ${rate} tok/s per stream, ${maxTokens} tokens per request, ${rounds} rounds per concurrency\n`,
  );
  try {
    await round(targets.tessera, 4, 8); // warm-up: the node's session, JIT
    await round(targets.direct, 4, 8);
    const summary: Record<string, number> = {};
    for (const concurrency of only) {
      // Each side's connection pools at this concurrency (the client's to its server, the daemon's to the backend)
      // and the code paths of this many streams at once, warmed before anything is counted: without it the first
      // round of 64 also opened 60 connections on each pool, once on the direct side and twice on Tessera's.
      await round(targets.tessera, concurrency, 8);
      await round(targets.direct, concurrency, 8);
      const side = () => ({ tokens: 0, ms: 0, ttft: [] as number[], lastFirst: [] as number[], cpu: { bench: 0, coordinator: 0, daemon: 0 } });
      const acc = { direct: side(), tessera: side() };
      const reps = concurrency === 1 ? rounds * 5 : rounds;
      for (let r = 0; r < reps; r++) {
        const order = r % 2 === 0 ? (["direct", "tessera"] as const) : (["tessera", "direct"] as const);
        for (const which of order) {
          const cpuBefore = cpuNow(cluster, fake.pid);
          const { results, wallMs } = await round(targets[which], concurrency, maxTokens);
          const cpuAfter = cpuNow(cluster, fake.pid);
          for (const k of ["bench", "coordinator", "daemon"] as const) acc[which].cpu[k] += cpuAfter[k] - cpuBefore[k];
          acc[which].tokens += results.reduce((n, x) => n + x.tokens, 0);
          acc[which].ms += wallMs;
          acc[which].ttft.push(...results.map((x) => x.ttftMs));
          acc[which].lastFirst.push(Math.max(...results.map((x) => x.ttftMs)));
        }
      }
      const tps = { direct: (acc.direct.tokens * 1000) / acc.direct.ms, tessera: (acc.tessera.tokens * 1000) / acc.tessera.ms };
      const ttft50 = { direct: percentile(acc.direct.ttft, 50), tessera: percentile(acc.tessera.ttft, 50) };
      const ttft99 = { direct: percentile(acc.direct.ttft, 99), tessera: percentile(acc.tessera.ttft, 99) };
      process.stdout.write(
        `c=${concurrency}: tokens/s direct ${fmt(tps.direct, 1)} tessera ${fmt(tps.tessera, 1)} (ratio ${fmt(tps.tessera / tps.direct)}); ` +
          `TTFT p50 direct ${fmt(ttft50.direct, 2)} ms tessera ${fmt(ttft50.tessera, 2)} ms; p99 direct ${fmt(ttft99.direct, 2)} tessera ${fmt(ttft99.tessera, 2)}\n`,
      );
      if (concurrency > 1) {
        // A round lasts until its slowest stream ends, so the ratio follows each round's last first token.
        const pairs = acc.direct.lastFirst.map((d, i) => `${fmt(d, 0)}/${fmt(acc.tessera.lastFirst[i]!, 0)}`);
        process.stdout.write(`c=${concurrency}: each round's last first token, ms direct/tessera: ${pairs.join(" ")}\n`);
      }
      const perK = (seconds: number, tokens: number) => fmt((seconds * 1e6) / tokens, 1);
      process.stdout.write(
        `c=${concurrency}: CPU ms per 1,000 tokens: direct client+backend ${perK(acc.direct.cpu.bench, acc.direct.tokens)}; ` +
          `tessera client+backend ${perK(acc.tessera.cpu.bench, acc.tessera.tokens)} coordinator ${perK(acc.tessera.cpu.coordinator, acc.tessera.tokens)} ` +
          `daemon ${perK(acc.tessera.cpu.daemon, acc.tessera.tokens)}\n`,
      );
      summary[`c${concurrency}_ratio`] = tps.tessera / tps.direct;
      summary[`c${concurrency}_ttft_added`] = ttft50.tessera - ttft50.direct;
    }
    if (summary.c1_ratio !== undefined) process.stdout.write(`RESULT gateway_tps_ratio_c1 ${fmt(summary.c1_ratio)}\n`);
    process.stdout.write(`RESULT gateway_tps_ratio_c64 ${fmt(summary.c64_ratio!)}\n`);
    if (summary.c1_ttft_added !== undefined) process.stdout.write(`RESULT gateway_ttft_added_ms_p50 ${fmt(summary.c1_ttft_added, 2)}\n`);
    process.stdout.write(`RESULT gateway_ttft_added_ms_p50_c64 ${fmt(summary.c64_ttft_added!, 2)}\n`);
  } finally {
    await cluster.stop();
    await fake.stop();
  }
}
