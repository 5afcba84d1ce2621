import { request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SseDecoder } from "@tessera/protocol";
import { type Cluster, type FakeOpenAICompatible, ManagedProcess, TESSERA_BIN, freePort, startCluster, startFakeOpenAICompatible, waitUntil } from "@tessera/testkit";

/**
 * Ctrl-C of `tessera coordinator start`, on real processes: open streams end with a final `shutting_down` error
 * event in their own format, a request that arrives during the drain gets 503 at once, the operator is told how to
 * force, and nothing is written to a closed store (no stack trace, no "driver has already been destroyed").
 */
const MODEL = "slow-chat";
const STACK_LINE = /^\s+at .+\(?.+:\d+:\d+\)?$/m;

describe("Ctrl-C with a node connected and streams open", () => {
  let backend: FakeOpenAICompatible;
  let cluster: Cluster;

  beforeAll(async () => {
    // 20 tokens a second: a 400-token answer is still streaming when the coordinator is stopped.
    backend = await startFakeOpenAICompatible({ flavour: "vllm", models: [MODEL], behaviour: { tokensPerSecond: 20, reply: "word ".repeat(400) } });
    cluster = await startCluster({ nodes: 1, nodeArgs: ["--backend", "vllm", "--vllm-host", backend.url] });
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
    await backend?.http.close();
  });

  it("ends the native SSE stream and the openai client's stream with shutting_down, exits 0, logs no stack", async () => {
    const body = { model: MODEL, messages: [{ role: "user" as const, content: "talk" }], max_tokens: 400 };
    const native = await fetch(`${cluster.url}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    expect(native.status).toBe(200);
    const nativeEvents: Array<Record<string, unknown>> = [];
    const nativeDone = (async () => {
      const decoder = new SseDecoder();
      const text = new TextDecoder();
      for await (const chunk of native.body!) {
        for (const event of decoder.push(text.decode(chunk as Uint8Array, { stream: true }))) {
          if (event.data !== "[DONE]") nativeEvents.push(JSON.parse(event.data) as Record<string, unknown>);
        }
      }
    })();

    const client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
    const stream = await client.chat.completions.create({ ...body, stream: true });
    let openaiText = "";
    const openaiDone = (async (): Promise<unknown> => {
      try {
        for await (const chunk of stream) openaiText += chunk.choices[0]?.delta.content ?? "";
        return undefined;
      } catch (err) {
        return err;
      }
    })();

    await waitUntil(() => nativeEvents.some((e) => typeof e.text === "string") && openaiText.length > 0, 30_000);
    cluster.coordinator.kill("SIGINT");

    await nativeDone;
    expect(nativeEvents.at(-1)).toEqual({ error: "shutting_down", message: expect.any(String) });
    const err = await openaiDone;
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).code).toBe("shutting_down");
    expect((err as APIError).type).toBe("shutting_down");

    const { code } = await cluster.coordinator.exited;
    const out = cluster.coordinator.logText;
    expect(code, out).toBe(0);
    expect(out).toContain("press Ctrl-C again to force");
    expect(out).not.toMatch(/destroyed/);
    expect(out).not.toMatch(STACK_LINE);
    // Logs are JSON records here (stdout is not a terminal): no error record, no stack in one either.
    expect(out).not.toMatch(/"level":50|"stack"/);
  }, 60_000);
});

describe("a request that arrives during the drain", () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tessera-shutdown-"));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function startCoordinator(name: string): Promise<{ proc: ManagedProcess; port: number }> {
    const port = await freePort();
    const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, "coordinator", "start", "--open", "--port", String(port), "--data-dir", join(dir, name)]);
    await proc.waitFor(/listening on/);
    return { proc, port };
  }

  /**
   * A request whose body is still arriving: it holds the shutdown's drain open (its answer is awaited) until the
   * rest of the body comes or the drain's grace runs out.
   */
  function slowUpload(port: number): { finish(): void; answer: Promise<{ status: number; body: string }> } {
    const payload = JSON.stringify({ model: "nobody-serves-this", messages: [{ role: "user", content: "hi" }] });
    const half = Math.floor(payload.length / 2);
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json", "content-length": payload.length } });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on("response", (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
    });
    answer.catch(() => undefined); // a forced exit cuts it; the test that forces asserts that itself
    req.write(payload.slice(0, half));
    return { finish: () => req.end(payload.slice(half)), answer };
  }

  async function expect503(port: number): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "any", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(JSON.stringify(await res.json())).toContain("shutting_down");
  }

  it("gets 503 shutting_down with Retry-After while an earlier request is still being answered", async () => {
    const { proc, port } = await startCoordinator("drain");
    const upload = slowUpload(port);
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 10_000);
    proc.kill("SIGINT");
    await proc.waitFor(/press Ctrl-C again to force/);
    await expect503(port);
    // The earlier request is still held open, not dropped: it gets its answer once its body has come.
    expect(proc.running).toBe(true);
    upload.finish();
    const answer = await upload.answer;
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.body).toMatch(/"error"/);
    const { code } = await proc.exited;
    expect(code, proc.logText).toBe(0);
    expect(proc.logText).not.toMatch(STACK_LINE);
  }, 60_000);

  it("during `tessera up`'s drain gets 503 shutting_down too, and up exits 0 once the earlier request is answered", async () => {
    const port = await freePort();
    const proc = new ManagedProcess("up", process.execPath, [TESSERA_BIN, "up", "--port", String(port), "--data-dir", join(dir, "up")]);
    await proc.waitFor(/Tessera is running/, 120_000);
    const upload = slowUpload(port);
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 10_000);
    proc.kill("SIGINT");
    await proc.waitFor(/press Ctrl-C again to force/);
    await expect503(port);
    upload.finish();
    expect((await upload.answer).body).toMatch(/"error"/);
    const { code } = await proc.exited;
    expect(code, proc.logText).toBe(0);
    expect(proc.logText).not.toMatch(STACK_LINE);
  }, 180_000);

  it("a second Ctrl-C forces the exit without waiting for the drain", async () => {
    const { proc, port } = await startCoordinator("force");
    const upload = slowUpload(port);
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 10_000);
    proc.kill("SIGINT");
    await proc.waitFor(/press Ctrl-C again to force/);
    await expect503(port);
    proc.kill("SIGINT");
    const { code } = await proc.exited;
    expect(code).toBe(130);
    expect(proc.logText).toMatch(/SIGINT again: exiting without waiting/);
    // Forced: the request still waiting was cut, not answered.
    await expect(upload.answer).rejects.toThrow();
  }, 60_000);
});
