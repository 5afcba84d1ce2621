/**
 * gateway-hops: where the time to first token goes on the way through Tessera, one stream at a time. A recording
 * proxy sits between the daemon and an OpenAI-compatible fake backend (vLLM flavour, first token at once), so each
 * request splits into: client → coordinator → daemon → backend request arrival ("in"), the backend's own first
 * token, and backend → daemon → coordinator → client ("out"). Run twice in one go: requests back to back, as the
 * gateway bench sends them (the next request lands while the coordinator and daemon still settle the last job:
 * billing, receipt, signatures, log lines), and with a 100 ms pause between requests (the path alone). Direct TTFT
 * to the fake is the floor. Figures are medians over --rounds requests after 10 warm-up ones.
 *
 *   npm run bench -- gateway-hops [--rounds 60]
 */
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { startCluster, startFakeOpenAICompatible } from "@tessera/testkit";
import { fmt, percentile } from "./lib-stats.js";

const MODEL = "bench-model";
const CONTENT = /"(content|text)":"[^"]/;

interface Marks {
  in: number;
  firstByte: number;
}

export async function main(args: string[] = []): Promise<void> {
  const { values } = parseArgs({ args, options: { rounds: { type: "string", default: "60" } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 5) throw new Error("--rounds must be an integer ≥ 5");
  const fake = await startFakeOpenAICompatible({ flavour: "vllm", models: [MODEL], behaviour: { tokensPerSecond: 100, reply: "a b c d e f g h" } });
  const backend = new URL(fake.url);
  let marks: Marks | undefined;
  const proxy = createServer((req, res) => {
    const mark: Marks = { in: performance.now(), firstByte: NaN };
    if (req.url?.includes("completions")) marks = mark;
    const upstream = httpRequest({ host: backend.hostname, port: backend.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.on("data", (chunk: Buffer) => {
        if (Number.isNaN(mark.firstByte) && CONTENT.test(chunk.toString())) mark.firstByte = performance.now();
        res.write(chunk);
      });
      up.on("end", () => res.end());
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const cluster = await startCluster({ nodes: 0 });
  try {
    await cluster.addNode({ nodeArgs: ["--backend", "vllm", "--vllm-host", proxyUrl, "--max-concurrency", "128"] });
    const ttft = async (base: string): Promise<number> => {
      const started = performance.now();
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "count" }], max_tokens: 4, stream: true }),
      });
      if (!res.ok) throw new Error(`${base}: HTTP ${res.status} ${await res.text()}`);
      let first = NaN;
      const text = new TextDecoder();
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (Number.isNaN(first) && CONTENT.test(text.decode(bytes, { stream: true }))) first = performance.now();
      }
      return first - started;
    };
    const measure = async (pauseMs: number) => {
      const rows: Array<{ inbound: number; backend: number; outbound: number; ttft: number }> = [];
      for (let i = 0; i < rounds + 10; i++) {
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
        marks = undefined;
        const started = performance.now();
        const total = await ttft(cluster.url);
        const m = marks as Marks | undefined;
        if (i < 10 || !m) continue;
        rows.push({ inbound: m.in - started, backend: m.firstByte - m.in, outbound: started + total - m.firstByte, ttft: total });
      }
      const p50 = (key: keyof (typeof rows)[number]) => percentile(rows.map((r) => r[key]), 50);
      return { inbound: p50("inbound"), backend: p50("backend"), outbound: p50("outbound"), ttft: p50("ttft") };
    };
    const direct: number[] = [];
    for (let i = 0; i < rounds; i++) direct.push(await ttft(fake.url));
    const directP50 = percentile(direct, 50);
    const backToBack = await measure(0);
    const paused = await measure(100);
    console.log(`gateway-hops: ${rounds} requests each, medians in ms; direct TTFT ${fmt(directP50, 2)}`);
    for (const [name, r] of [["back to back", backToBack], ["100 ms apart", paused]] as const) {
      console.log(`${name.padEnd(13)} in ${fmt(r.inbound, 2)}  backend ${fmt(r.backend, 2)}  out ${fmt(r.outbound, 2)}  TTFT ${fmt(r.ttft, 2)} (+${fmt(r.ttft - directP50, 2)} over direct)`);
    }
    console.log(`RESULT gateway_hops_inbound_ms_p50 ${fmt(paused.inbound, 2)}`);
    console.log(`RESULT gateway_hops_outbound_ms_p50 ${fmt(paused.outbound, 2)}`);
    console.log(`RESULT gateway_hops_ttft_added_ms_p50 ${fmt(paused.ttft - directP50, 2)}`);
    console.log(`RESULT gateway_hops_ttft_added_back_to_back_ms_p50 ${fmt(backToBack.ttft - directP50, 2)}`);
  } finally {
    await cluster.stop();
    proxy.close();
    await fake.http.close();
  }
}
