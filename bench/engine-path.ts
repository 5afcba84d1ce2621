/**
 * engine-path: the whole path on a real engine. The same greedy chat goes to
 *   - tessera: the coordinator and the daemon `tessera up` runs, with its defaults (open mode, the embedded engine,
 *     `--max-concurrency` 4), as real processes (testkit's startCluster: `tessera coordinator start` and `tessera
 *     start --backend embedded`, two processes where `tessera up` runs both in one), streamed through the OpenAI
 *     endpoint (`/v1/chat/completions`, stream, temperature 0, fixed max_tokens), and
 *   - direct: node-llama-cpp driven in this process (getLlama CPU build, loadModel, one context with 8 sequences and
 *     the same thread count), each stream on its own sequence, `sequence.evaluate` greedy, every token detokenised,
 * on the testkit's ~56M-parameter F16 model, at 1 stream and at 8 concurrent streams. The prompt is rendered for the
 * direct side by the embedded backend's own formatter (`createPromptFormatter`), so both evaluate the same prompt
 * ids; both stop at max_tokens or an end-of-generation token, and tokens/s counts what each generated (usage on the
 * tessera side) over the round's wall time. TTFT is from sending the request to the first content token.
 *
 * The machine is shared, so the two sides run interleaved round by round (the order alternating), after one warm-up
 * round each; the ratio tessera/direct is taken over the tokens and wall time summed over rounds, and every round is
 * printed so the spread shows. On Linux the run also prints CPU milliseconds per token (from /proc): the coordinator's,
 * the daemon's main thread's (relay, text, frames) and its other threads' (the engine) over the tessera rounds, and this
 * process's over the direct rounds. The daemon's engine takes its thread count from its default (1 on ≤ 2 cores, else
 * half the cores; the daemon has no setting for it), so `--threads` must equal that default.
 *
 *   npm run bench -- engine-path [--tokens 128] [--rounds 3] [--threads <daemon default>] [--max-concurrency 4] [--split]
 *
 * `ENGINE_PATH_PROF=<dir>` writes CPU profiles of the coordinator and the daemon there (`--cpu-prof`).
 *
 * `--max-concurrency` is the daemon's setting (jobs at once, and so the embedded context's sequences: at 4, eight
 * streams run four at a time and the others wait in the coordinator's queue); the default is `tessera up`'s.
 * `--split` adds a third side in the same rounds: the embedded backend itself (`createEmbeddedBackend(…).doStream`) in
 * this process, with the daemon's sequence count and no coordinator, daemon or network, which tells the engine
 * adapter's share of the gap from the gateway's.
 *
 * Prints RESULT engine_path_tok_s_{tessera,direct}_c{1,8}, engine_path_ratio_c1, engine_path_ratio_c8 (tessera/direct)
 * and engine_path_ttft_p50_ms_{tessera,direct}_c{1,8}; with --split also the embedded side's figures and
 * engine_path_embedded_ratio_c{1,8}.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type LlamaContextSequence, type Token, getLlama } from "node-llama-cpp";
import { SseDecoder } from "@tessera/protocol";
import { makeTinyModel, startCluster } from "@tessera/testkit";
import { type EmbeddedBackend, createEmbeddedBackend, createPromptFormatter, defaultEmbeddedThreads } from "@tessera/node/embedded";
import { cpuProfileFlags } from "./lib-cpu-profile.js";
import { fmt, percentile } from "./lib-stats.js";

const MESSAGES = [{ role: "user" as const, content: "Tell me a long story about a fox who learns to sail across the sea." }];
const CONCURRENCIES = [1, 8] as const;
/** Sequential requests per round at one stream, so that a round lasts about as long at 1 stream as at 8. */
const C1_REQUESTS = 3;

interface StreamResult {
  ttftMs: number;
  tokens: number;
  text: string;
}

type Side = "tessera" | "embedded" | "direct";

async function tesseraStream(url: string, model: string, maxTokens: number): Promise<StreamResult> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: MESSAGES, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`tessera: HTTP ${res.status} ${await res.text()}`);
  const decoder = new SseDecoder();
  const utf8 = new TextDecoder();
  let ttftMs = NaN;
  let text = "";
  let tokens: number | undefined;
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(utf8.decode(bytes, { stream: true }))) {
      if (event.data === "[DONE]") continue;
      const chunk = JSON.parse(event.data) as { choices: { delta?: { content?: string } }[]; usage?: { completion_tokens: number }; error?: unknown };
      if (chunk.error) throw new Error(`tessera: error in stream: ${JSON.stringify(chunk.error)}`);
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      const content = chunk.choices[0]?.delta?.content;
      if (content) {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        text += content;
      }
    }
  }
  if (tokens === undefined) throw new Error("tessera: the stream ended without usage");
  return { ttftMs, tokens, text };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      tokens: { type: "string", default: "128" },
      rounds: { type: "string", default: "3" },
      threads: { type: "string" },
      "max-concurrency": { type: "string", default: "4" },
      split: { type: "boolean", default: false },
    },
  });
  const maxTokens = Number(values.tokens);
  const rounds = Number(values.rounds);
  const daemonThreads = defaultEmbeddedThreads();
  const threads = values.threads === undefined ? daemonThreads : Number(values.threads);
  const maxConcurrency = Number(values["max-concurrency"]);
  for (const [name, n] of [["tokens", maxTokens], ["rounds", rounds], ["threads", threads], ["max-concurrency", maxConcurrency]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`engine-path: --${name} must be a positive integer, got ${String(n)}`);
  }
  if (threads !== daemonThreads) {
    throw new Error(`engine-path: --threads ${threads}: the daemon's embedded engine runs ${daemonThreads} thread(s) on this machine (its default; it has no setting), so the direct side must too`);
  }

  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });
  const info = await makeTinyModel({ path: join(dir, "engine-path-50m-f16.gguf"), preset: "50m", weightType: "f16", seed: 5 });
  const [l1, l5, l15] = loadavg();
  process.stdout.write(
    `engine-path: ${info.parameterCount} parameters F16 (${(info.sizeBytes / 2 ** 20).toFixed(1)} MiB), ${threads} thread(s) each side, ` +
      `${maxTokens} max tokens, ${rounds} rounds (+1 warm-up), daemon --max-concurrency ${maxConcurrency}; load average ${fmt(l1!, 2)} ${fmt(l5!, 2)} ${fmt(l15!, 2)}\n`,
  );

  // Direct: node-llama-cpp in this process, as the embedded engine loads it (CPU build, context size capped at 4096).
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath: info.path });
  const context = await model.createContext({ contextSize: Math.min(model.trainContextSize, 4096), sequences: Math.max(...CONCURRENCIES), threads });
  const sequences: LlamaContextSequence[] = [];
  for (let i = 0; i < Math.max(...CONCURRENCIES); i++) sequences.push(context.getSequence());
  const promptIds = createPromptFormatter(model).promptTokens(MESSAGES);

  async function directStream(sequence: LlamaContextSequence, limit: number): Promise<StreamResult> {
    const started = performance.now();
    let ttftMs = NaN;
    const out: Token[] = [];
    let text = "";
    await sequence.clearHistory();
    for await (const token of sequence.evaluate(promptIds, { temperature: 0, yieldEogToken: true })) {
      if (model.isEogToken(token)) break;
      if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
      text += model.detokenize([token], false, [...promptIds, ...out].slice(-16));
      out.push(token);
      if (out.length >= limit) break;
    }
    return { ttftMs, tokens: out.length, text };
  }

  // --split: the embedded backend itself in this process (no coordinator, no daemon, no network), at the daemon's
  // sequence count, to tell the engine adapter's share of the gap from the gateway's.
  let embedded: EmbeddedBackend | undefined;
  const sides: Side[] = values.split ? ["tessera", "embedded", "direct"] : ["tessera", "direct"];
  const cluster = await startCluster({
    nodes: 1,
    modelPath: info.path,
    nodeArgs: ["--max-concurrency", String(maxConcurrency)],
    coordinatorArgs: ["--log-level", "warn"],
    env: { TESSERA_LOG_LEVEL: "warn" },
    nodeFlags: { coordinator: cpuProfileFlags("ENGINE_PATH_PROF"), node: cpuProfileFlags("ENGINE_PATH_PROF") },
  });
  const served = cluster.model!;
  if (values.split) {
    embedded = createEmbeddedBackend({ modelPath: info.path, modelId: served, threads, maxSequences: maxConcurrency });
    await embedded.load();
  }

  async function embeddedStream(limit: number): Promise<StreamResult> {
    const started = performance.now();
    let ttftMs = NaN;
    let text = "";
    let tokens: number | undefined;
    const request = { model: served, messages: MESSAGES, sampling: { max_tokens: limit, temperature: 0, top_p: 1 } };
    for await (const part of embedded!.doStream(request)) {
      if (part.type === "text-delta") {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        text += part.text;
      } else if (part.type === "usage") tokens = part.completion_tokens;
      else if (part.type === "error") throw new Error(`embedded: ${part.code}: ${part.message}`);
    }
    return { ttftMs, tokens: tokens ?? 0, text };
  }

  async function round(side: Side, concurrency: number, limit: number): Promise<{ results: StreamResult[]; wallMs: number }> {
    const started = performance.now();
    const one = (i: number) =>
      side === "tessera" ? tesseraStream(cluster.url, served, limit) : side === "embedded" ? embeddedStream(limit) : directStream(sequences[i]!, limit);
    let results: StreamResult[];
    if (concurrency === 1) {
      results = [];
      for (let r = 0; r < C1_REQUESTS; r++) results.push(await one(0));
    } else {
      results = await Promise.all(Array.from({ length: concurrency }, (_, i) => one(i)));
    }
    return { results, wallMs: performance.now() - started };
  }

  const summary: Array<[string, number]> = [];
  try {
    for (const side of sides) await round(side, 8, 16); // warm-up: model pages, JIT, session
    for (const concurrency of CONCURRENCIES) {
      const acc = Object.fromEntries(sides.map((side) => [side, { tokens: 0, ms: 0, ttft: [] as number[] }]));
      /** CPU seconds spent during the tessera rounds by the coordinator, the daemon's main thread and its other threads. */
      const cpu = { coordinator: 0, daemonMain: 0, daemonRest: 0, bench: 0 };
      const texts: Partial<Record<Side, string>> = {};
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? sides : [...sides].reverse();
        const line: string[] = [];
        const perRound: Partial<Record<Side, number>> = {};
        for (const side of order) {
          const coordinatorBefore = processCpu(cluster.coordinator.pid);
          const daemonBefore = processCpu(cluster.nodes[0]!.process.pid);
          const benchBefore = process.cpuUsage();
          const { results, wallMs } = await round(side, concurrency, maxTokens);
          if (side === "tessera" && coordinatorBefore && daemonBefore) {
            const coordinatorAfter = processCpu(cluster.coordinator.pid)!;
            const daemonAfter = processCpu(cluster.nodes[0]!.process.pid)!;
            cpu.coordinator += coordinatorAfter.main + coordinatorAfter.rest - coordinatorBefore.main - coordinatorBefore.rest;
            cpu.daemonMain += daemonAfter.main - daemonBefore.main;
            cpu.daemonRest += daemonAfter.rest - daemonBefore.rest;
          }
          if (side === "direct") {
            const used = process.cpuUsage(benchBefore);
            cpu.bench += (used.user + used.system) / 1e6;
          }
          const tokens = results.reduce((n, x) => n + x.tokens, 0);
          acc[side]!.tokens += tokens;
          acc[side]!.ms += wallMs;
          acc[side]!.ttft.push(...results.map((x) => x.ttftMs));
          if (r === 0) texts[side] = results[0]!.text;
          perRound[side] = (tokens * 1000) / wallMs;
        }
        for (const side of sides) line.push(`${side} ${fmt(perRound[side]!, 1)}`);
        process.stdout.write(`  c=${concurrency} round ${r + 1}: tok/s ${line.join(", ")}; ratio ${fmt(perRound.tessera! / perRound.direct!)}\n`);
      }
      const tps = (side: Side) => (acc[side]!.tokens * 1000) / acc[side]!.ms;
      const ttft = (side: Side) => percentile(acc[side]!.ttft, 50);
      const same = sides.map((side) => `${side} ${texts[side] === texts.direct ? "=" : `differs after ${commonPrefix(texts[side]!, texts.direct!)} chars`}`).slice(0, -1).join(", ");
      process.stdout.write(
        `c=${concurrency}: tokens/s ${sides.map((side) => `${side} ${fmt(tps(side), 1)}`).join(" ")} (ratio tessera/direct ${fmt(tps("tessera") / tps("direct"))}` +
          `${values.split ? `, embedded/direct ${fmt(tps("embedded") / tps("direct"))}` : ""}); ` +
          `TTFT p50 ${sides.map((side) => `${side} ${fmt(ttft(side), 1)} ms`).join(" ")}; first answers against direct: ${same}\n`,
      );
      if (cpu.coordinator + cpu.daemonMain + cpu.daemonRest > 0) {
        const perToken = (seconds: number, side: Side) => fmt((seconds * 1000) / acc[side]!.tokens, 2);
        process.stdout.write(
          `c=${concurrency}: CPU ms per token: tessera coordinator ${perToken(cpu.coordinator, "tessera")}, daemon main thread ${perToken(cpu.daemonMain, "tessera")}, ` +
            `daemon other threads (engine) ${perToken(cpu.daemonRest, "tessera")}; direct (this process) ${perToken(cpu.bench, "direct")}\n`,
        );
      }
      for (const side of sides) summary.push([`engine_path_tok_s_${side}_c${concurrency}`, tps(side)]);
      summary.push([`engine_path_ratio_c${concurrency}`, tps("tessera") / tps("direct")]);
      if (values.split) summary.push([`engine_path_embedded_ratio_c${concurrency}`, tps("embedded") / tps("direct")]);
      for (const side of sides) summary.push([`engine_path_ttft_p50_ms_${side}_c${concurrency}`, ttft(side)]);
    }
  } finally {
    await cluster.stop();
    await embedded?.close();
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
  const [e1] = loadavg();
  process.stdout.write(`load average at the end: ${fmt(e1!, 2)}\n`);
  for (const [name, value] of summary) process.stdout.write(`RESULT ${name} ${fmt(value, name.includes("ratio") ? 3 : 1)}\n`);
}

/**
 * CPU seconds so far (user + system, from /proc; Linux only, else undefined) of a process's main thread and of its
 * other threads together (node-llama-cpp decodes and samples on libuv worker threads; GC and I/O threads count too).
 */
function processCpu(pid: number): { main: number; rest: number } | undefined {
  const task = `/proc/${pid}/task`;
  if (!existsSync(task)) return undefined;
  const ticks = 100; // USER_HZ on Linux
  let main = 0;
  let rest = 0;
  for (const tid of readdirSync(task)) {
    let stat: string;
    try {
      stat = readFileSync(`${task}/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const seconds = (Number(fields[11]) + Number(fields[12])) / ticks; // utime, stime: fields 14 and 15 of stat
    if (Number(tid) === pid) main += seconds;
    else rest += seconds;
  }
  return { main, rest };
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
