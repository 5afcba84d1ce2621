/**
 * hostile: what unauthenticated, oversized input costs everyone else. A real coordinator and one daemon (embedded
 * engine, tiny generated model) serve one streaming chat; meanwhile three concurrent ~8 MB bodies of nested arrays
 * (`[[[[…]]]]`) without credentials go to each of POST /api/v1/jobs, /v1/chat/completions and
 * /api/v1/nodes/register (9 requests). Measured side by side in one run: each hostile request's latency to its answer,
 * /healthz p99 before and during the attack, and the coordinator's resident memory (VmRSS) growth.
 *
 *   npm run bench -- hostile [--mib 8] [--copies 3] [--tokens 256]
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SseDecoder } from "@tessera/protocol";
import { makeTinyModel, startCluster } from "@tessera/testkit";
import { fmt, percentile } from "./lib-stats.js";

const ROUTES = ["/api/v1/jobs", "/v1/chat/completions", "/api/v1/nodes/register"];

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m);
  return line ? Number(line[1]) / 1024 : NaN;
}

/** POSTs `body` and resolves at the response's status line (the rest of the upload is the server's business). */
function hostilePost(baseUrl: string, path: string, body: Buffer): Promise<{ status: number; ms: number; code: string }> {
  const url = new URL(path, baseUrl);
  const started = performance.now();
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json", "content-length": body.length } },
      (res) => {
        const ms = performance.now() - started;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let code = "";
          try {
            code = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: string | { code?: string } }).error as string;
            if (typeof code === "object" && code !== null) code = (code as { code?: string }).code ?? "";
          } catch {
            code = "(not json)";
          }
          resolve({ status: res.statusCode ?? 0, ms, code: String(code) });
        });
        res.on("error", () => resolve({ status: res.statusCode ?? 0, ms, code: "(cut)" }));
      },
    );
    req.on("error", (err) => resolve({ status: 0, ms: performance.now() - started, code: `(${(err as NodeJS.ErrnoException).code ?? err.message})` }));
    req.end(body);
  });
}

async function healthzOnce(baseUrl: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/healthz`);
  await res.arrayBuffer();
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

async function stream(baseUrl: string, model: string, maxTokens: number): Promise<{ chunks: number; done: boolean; ms: number }> {
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
      else chunks++;
    }
  }
  return { chunks, done, ms: performance.now() - started };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { mib: { type: "string", default: "8" }, copies: { type: "string", default: "3" }, tokens: { type: "string", default: "256" } },
  });
  const mib = Number(values.mib);
  const copies = Number(values.copies);
  const tokens = Number(values.tokens);
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-hostile-"));
  const modelPath = join(dir, "hostile-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 3 });
  const cluster = await startCluster({ nodes: 1, modelPath, coordinatorArgs: ["--log-level", "warn"], env: { TESSERA_LOG_LEVEL: "warn" } });
  const pid = cluster.coordinator.pid;
  // Just under the 8 MiB client body cap, balanced so it is valid JSON nested ~4 M deep.
  const half = Math.floor((mib * 1024 * 1024 - 16) / 2);
  const body = Buffer.from("[".repeat(half) + "]".repeat(half));
  process.stdout.write(`hostile: ${copies} × ${(body.length / 1048576).toFixed(2)} MiB nested-array bodies without credentials to each of ${ROUTES.join(", ")}\n`);
  try {
    await stream(cluster.url, cluster.model!, 8); // warm-up: session, JIT, the model's first load
    for (let i = 0; i < 20; i++) await healthzOnce(cluster.url);

    let stopBaseline = false;
    const baselineRun = probe(cluster.url, () => stopBaseline);
    await new Promise((r) => setTimeout(r, 3000));
    stopBaseline = true;
    const baseline = await baselineRun;
    const rssBefore = rssMb(pid);

    const streaming = stream(cluster.url, cluster.model!, tokens);
    await new Promise((r) => setTimeout(r, 300)); // the stream is under way
    let attackOver = false;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(pid))), 20);
    const during = probe(cluster.url, () => attackOver);
    const attackStarted = performance.now();
    const results = await Promise.all(ROUTES.flatMap((path) => Array.from({ length: copies }, () => hostilePost(cluster.url, path, body).then((r) => ({ path, ...r })))));
    const attackMs = performance.now() - attackStarted;
    // Keep probing a moment after the last answer: work the attack queued may still be running.
    await new Promise((r) => setTimeout(r, 500));
    attackOver = true;
    const duringLatencies = await during;
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, rssMb(pid));
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
        `/healthz p99 before ${fmt(p99Before, 2)} ms (${baseline.length} probes), during ${fmt(p99During, 2)} ms (${duringLatencies.length} probes, max ${fmt(Math.max(...duringLatencies), 1)} ms)\n` +
        `coordinator VmRSS before ${fmt(rssBefore, 1)} MB, peak during ${fmt(rssPeak, 1)} MB\n` +
        `stream: ${streamed.chunks} chunks in ${fmt(streamed.ms, 0)} ms, ${streamed.done ? "completed with [DONE]" : "DID NOT COMPLETE"}\n`,
    );
    process.stdout.write(`RESULT hostile_answered_4xx_within_100ms ${within100}/${results.length}\n`);
    process.stdout.write(`RESULT hostile_healthz_p99_ratio ${fmt(p99During / p99Before, 2)}\n`);
    process.stdout.write(`RESULT hostile_rss_growth_mb ${fmt(rssPeak - rssBefore, 1)}\n`);
    process.stdout.write(`RESULT hostile_stream_completed ${streamed.done ? 1 : 0}\n`);
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
