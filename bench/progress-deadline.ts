/**
 * progress-deadline: the data behind the coordinator's progress deadlines (scheduler/design.md, "Progress
 * deadlines"). Honest streams through coordinator + one daemon on the embedded engine, with short and long prompts
 * mixed in random order, alone and four at once. For every stream it records the client's time to first token and
 * the longest gap between two content chunks, then replays the deadlines the coordinator would have set for each
 * stream (its own functions, with the EWMAs it would have held: α as in speed-metrics.ts).
 *
 *   npm run bench -- progress-deadline [--streams 24] [--tokens 48] [--preset 50m]
 *
 * Prints the distributions and, against the defaults: `RESULT progress_first_token_floor_margin` (the first-token floor
 * over the worst honest TTFT), `RESULT progress_stall_floor_margin` (the stall floor over the worst honest gap),
 * `RESULT progress_first_token_headroom_min` and `RESULT progress_stall_headroom_min` (the least allowance ÷ time taken
 * when the coordinator's deadline functions are replayed over the run: an honest stream is cut only below 1), and
 * `RESULT progress_prefill_tokens_per_second_min`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SseDecoder } from "@tessera/protocol";
import { makeTinyModel, startCluster } from "@tessera/testkit";
import { DEFAULT_PROGRESS_LIMITS, firstPartDeadline, nextPartDeadline } from "../packages/coordinator/src/jobs/progress-deadline.js";
import { METRICS_EWMA_ALPHA } from "../packages/coordinator/src/store/metric-queries.js";
import { fmt, percentile } from "./lib-stats.js";

interface StreamSample {
  promptTokens: number;
  estimatedPromptTokens: number;
  ttftMs: number;
  maxGapMs: number;
  tokens: number;
  decodeMs: number;
}

async function oneStream(baseUrl: string, model: string, prompt: string, maxTokens: number): Promise<StreamSample> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status} ${await res.text()}`);
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  let first = NaN;
  let last = NaN;
  let maxGapMs = 0;
  let usage = { prompt_tokens: 0, completion_tokens: 0 };
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(text.decode(bytes, { stream: true }))) {
      if (event.data === "[DONE]") continue;
      const chunk = JSON.parse(event.data) as { choices: { delta?: { content?: string } }[]; usage?: typeof usage; error?: unknown };
      if (chunk.error) throw new Error(`stream failed: ${event.data}`);
      if (chunk.usage) usage = chunk.usage;
      if (!chunk.choices[0]?.delta?.content) continue;
      const now = performance.now();
      if (Number.isNaN(first)) first = now;
      else maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
    }
  }
  return { promptTokens: usage.prompt_tokens, estimatedPromptTokens: Math.ceil(prompt.length / 4), ttftMs: first - started, maxGapMs, tokens: usage.completion_tokens, decodeMs: last - first };
}

/**
 * Replays the coordinator's deadlines over the samples in order, with the EWMAs it would have held (solo-equivalent
 * figures, as job-manager records them) and the prompt size it estimates (4 characters a token). Returns the least
 * headroom seen, allowance ÷ what the honest stream took, for the first token and for the longest gap; the stall
 * figure leaves out the newcomer rule (it only lengthens deadlines), so it is a lower bound.
 */
function headroom(samples: StreamSample[], load: number): { firstToken: number; stall: number } {
  let ttftEwma: number | undefined;
  let tpsEwma: number | undefined;
  let firstToken = Infinity;
  let stall = Infinity;
  for (const s of samples) {
    const measured = ttftEwma === undefined ? undefined : { ttftMs: ttftEwma, tokensPerSecond: tpsEwma ?? 0 };
    firstToken = Math.min(firstToken, firstPartDeadline(0, { measured, promptTokens: s.estimatedPromptTokens, load }, DEFAULT_PROGRESS_LIMITS) / s.ttftMs);
    if (s.maxGapMs > 0) stall = Math.min(stall, nextPartDeadline(0, { measured, load }, DEFAULT_PROGRESS_LIMITS) / s.maxGapMs);
    const soloTtft = s.ttftMs / load;
    const soloTps = s.tokens > 1 && s.decodeMs > 0 ? ((s.tokens - 1) * 1000 * load) / s.decodeMs : 0;
    ttftEwma = ttftEwma === undefined ? soloTtft : ttftEwma + METRICS_EWMA_ALPHA * (soloTtft - ttftEwma);
    if (soloTps > 0) tpsEwma = tpsEwma === undefined ? soloTps : tpsEwma + METRICS_EWMA_ALPHA * (soloTps - tpsEwma);
  }
  return { firstToken, stall };
}

function describe(name: string, values: number[]): string {
  return `${name} p50 ${fmt(percentile(values, 50), 1)} p99 ${fmt(percentile(values, 99), 1)} max ${fmt(Math.max(...values), 1)} ms`;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { streams: { type: "string", default: "24" }, tokens: { type: "string", default: "48" }, preset: { type: "string", default: "50m" } },
  });
  const streams = Number(values.streams);
  const maxTokens = Number(values.tokens);
  const preset = values.preset === "tiny" ? "tiny" : "50m";
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-progress-"));
  const modelPath = join(dir, `progress-${preset}.gguf`);
  await makeTinyModel({ path: modelPath, seed: 5, preset, vocab: "spm" });
  const cluster = await startCluster({ nodes: 1, modelPath, coordinatorArgs: ["--log-level", "warn", "--rate-limit", "1000000"], nodeArgs: ["--max-concurrency", "4"], env: { TESSERA_LOG_LEVEL: "warn" } });
  const model = cluster.model!;
  // Prompt sizes in words (about three tokens each): a chat turn, a page, most of this model's context.
  const sizes = preset === "50m" ? [3, 130, 450] : [3, 40, 110];
  const prompt = (words: number) => Array.from({ length: words }, (_, i) => `word${i % 97}`).join(" ");
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  try {
    await oneStream(cluster.url, model, "warm up", 4);
    const all: StreamSample[] = [];
    const rooms: Record<number, { firstToken: number; stall: number }> = {};
    for (const concurrency of [1, 4]) {
      const samples: StreamSample[] = [];
      for (let i = 0; i < streams; i += concurrency) {
        const batch = Array.from({ length: concurrency }, () => oneStream(cluster.url, model, prompt(sizes[Math.floor(random() * sizes.length)]!), maxTokens));
        samples.push(...(await Promise.all(batch)));
      }
      all.push(...samples);
      const room = (rooms[concurrency] = headroom(samples, concurrency));
      process.stdout.write(
        `c=${concurrency}, ${samples.length} streams: ${describe("TTFT", samples.map((s) => s.ttftMs))}; ${describe("longest gap", samples.map((s) => s.maxGapMs))}; ` +
          `least headroom under the default deadlines: first token ${fmt(room.firstToken, 1)}x, between tokens ${fmt(room.stall, 1)}x\n`,
      );
    }
    const prefill = all.filter((s) => s.promptTokens >= 100).map((s) => (s.promptTokens * 1000) / s.ttftMs);
    const worstTtft = Math.max(...all.map((s) => s.ttftMs));
    const worstGap = Math.max(...all.map((s) => s.maxGapMs));
    process.stdout.write(`prompt tokens seen ${Math.min(...all.map((s) => s.promptTokens))}–${Math.max(...all.map((s) => s.promptTokens))}; prefill ${fmt(Math.min(...prefill), 0)}–${fmt(Math.max(...prefill), 0)} tokens/s (mixed load)\n`);
    process.stdout.write(`defaults: first-token floor ${DEFAULT_PROGRESS_LIMITS.firstPartFloorMs} ms, stall floor ${DEFAULT_PROGRESS_LIMITS.stallFloorMs} ms, slack ${DEFAULT_PROGRESS_LIMITS.slack}, slowest prefill ${DEFAULT_PROGRESS_LIMITS.slowestPrefillTokensPerSecond} tokens/s\n`);
    process.stdout.write(`RESULT progress_first_token_floor_margin ${fmt(DEFAULT_PROGRESS_LIMITS.firstPartFloorMs / worstTtft, 1)}\n`);
    process.stdout.write(`RESULT progress_stall_floor_margin ${fmt(DEFAULT_PROGRESS_LIMITS.stallFloorMs / worstGap, 1)}\n`);
    process.stdout.write(`RESULT progress_first_token_headroom_min ${fmt(Math.min(rooms[1]!.firstToken, rooms[4]!.firstToken), 1)}\n`);
    process.stdout.write(`RESULT progress_stall_headroom_min ${fmt(Math.min(rooms[1]!.stall, rooms[4]!.stall), 1)}\n`);
    process.stdout.write(`RESULT progress_prefill_tokens_per_second_min ${fmt(Math.min(...prefill), 0)}\n`);
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
