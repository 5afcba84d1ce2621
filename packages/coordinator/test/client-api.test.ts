import { afterEach, beforeEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { SseDecoder } from "@tessera/protocol";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

let t: TestCoordinator;
let baseUrl: string;
let node: ScriptedNode;
let nodeId: string;

async function startWithNode(overrides = {}) {
  t = await testCoordinator(overrides);
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const addr = t.coordinator.app.server.address() as { port: number };
  baseUrl = `http://127.0.0.1:${addr.port}`;
  const n = newNode();
  nodeId = n.id;
  expect((await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", registration(n.id))).statusCode).toBe(200);
  node = new ScriptedNode(baseUrl, n.signer, () => Math.floor(t.clock.now() / 1000));
  await node.connect();
}

afterEach(async () => {
  await node?.close();
  await t?.close();
});

const auth = () => ({ authorization: `Bearer ${t.token}` });
const chat = { model: "tiny", messages: [{ role: "user", content: "hi" }] };

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = auth()) {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

function sseEvents(text: string): string[] {
  return new SseDecoder().push(text).map((e) => e.data);
}

async function until<T>(fn: () => Promise<T | undefined>, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never held");
}

describe("client API", () => {
  beforeEach(async () => startWithNode());

  it("runs a submitted job to completion and reports it when polled", async () => {
    const created = await api("POST", "/api/v1/jobs", chat);
    expect(created.status).toBe(202);
    const job = created.json();
    expect(job).toMatchObject({ status: "pending", model: "tiny" });
    const done = await until(async () => {
      const r = (await api("GET", `/api/v1/jobs/${job.id}`)).json();
      return r.status === "completed" ? r : undefined;
    });
    expect(done).toMatchObject({
      node_id: nodeId,
      result: { content: "Hello world", usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } },
    });
    expect(typeof done.latency_ms).toBe("number");
    expect(node.assignments[0]).toMatchObject({ model: "tiny", sampling: { max_tokens: 512, temperature: 0.7, top_p: 1 } });
  });

  it("streams native SSE ending in [DONE], and replays to a late reader", async () => {
    const res = await api("POST", "/api/v1/jobs", { ...chat, stream: true });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(sseEvents(res.text)).toEqual(['{"text":"Hello"}', '{"text":" world"}', "[DONE]"]);
    const id = res.headers.get("x-tessera-job-id")!;
    const late = await api("GET", `/api/v1/jobs/${id}/stream`);
    expect(sseEvents(late.text).join("")).toBe('{"text":"Hello world"}[DONE]');
  });

  it("gives a reader that connects mid-stream what was generated, then the live rest", async () => {
    let jobId = "";
    node.onAssign = (job, n) => {
      jobId = job.job_id;
      n.accept(job.job_id);
      n.stream(job.job_id, [{ type: "text-delta", text: "early " }]);
    };
    await api("POST", "/api/v1/jobs", chat);
    await until(async () => (t.coordinator.ctx.jobs.get(jobId)?.text === "early " ? true : undefined));
    const reading = api("GET", `/api/v1/jobs/${jobId}/stream`);
    await new Promise((r) => setTimeout(r, 50));
    node.stream(jobId, [{ type: "text-delta", text: "late" }, { type: "usage", prompt_tokens: 1, completion_tokens: 2 }, { type: "finish", reason: "stop" }]);
    expect(sseEvents((await reading).text)).toEqual(['{"text":"early "}', '{"text":"late"}', "[DONE]"]);
  });

  it("accepts a node frame that carries several messages (an array)", async () => {
    node.onAssign = (job, n) => {
      n.send([
        { type: "job.accept", job_id: job.job_id },
        { type: "job.part", job_id: job.job_id, part: { type: "text-delta", text: "one" } },
        { type: "job.part", job_id: job.job_id, part: { type: "text-delta", text: " two" } },
        { type: "job.part", job_id: job.job_id, part: { type: "bogus" } },
        { type: "job.part", job_id: job.job_id, part: { type: "finish", reason: "stop" } },
      ]);
    };
    const res = await api("POST", "/api/v1/jobs", { ...chat, stream: true });
    expect(sseEvents(res.text)).toEqual(['{"text":"one"}', '{"text":" two"}', "[DONE]"]);
  });

  it("reports a node error as a native error event and a failed job", async () => {
    node.onAssign = (job, n) => {
      n.accept(job.job_id);
      n.stream(job.job_id, [{ type: "text-delta", text: "x" }, { type: "error", code: "bad_request", message: "prompt too long" }]);
    };
    const res = await api("POST", "/api/v1/jobs", { ...chat, stream: true });
    expect(sseEvents(res.text)).toEqual(['{"text":"x"}', '{"error":"bad_request","message":"prompt too long"}']);
  });

  it("lists only the caller's jobs, filtered by limit, status and since", async () => {
    for (let i = 0; i < 3; i++) await api("POST", "/api/v1/jobs", { ...chat, stream: true });
    const before = new Date(t.clock.now()).toISOString();
    t.clock.advance(5_000);
    node.onAssign = () => undefined; // this one stays pending
    await api("POST", "/api/v1/jobs", chat);
    await until(async () => ((await t.coordinator.ctx.store.listJobs("key:key-test", { limit: 10 })).length === 4 ? true : undefined));
    expect((await api("GET", "/api/v1/jobs?limit=2")).json().jobs).toHaveLength(2);
    expect((await api("GET", "/api/v1/jobs?status=completed")).json().jobs).toHaveLength(3);
    const since = (await api("GET", `/api/v1/jobs?since=${encodeURIComponent(new Date(t.clock.now()).toISOString())}`)).json().jobs;
    expect(since).toHaveLength(1);
    expect(since[0].status).toBe("pending");
    expect((await api("GET", `/api/v1/jobs?since=${encodeURIComponent(before)}`)).json().jobs.length).toBeGreaterThanOrEqual(1);
    const other = (await api("GET", "/api/v1/jobs", undefined, {})).status;
    expect(other).toBe(401);
  });

  it("rejects bad input with bad_request and stores nothing", async () => {
    const bad: unknown[] = [
      {},
      { model: "tiny" },
      { model: "tiny", messages: [] },
      { model: "tiny", messages: [{ role: "wizard", content: "x" }] },
      { ...chat, max_tokens: 0 },
      { ...chat, max_tokens: 1e9 },
      { ...chat, temperature: -1 },
      { ...chat, top_p: 0 },
      { ...chat, stream: "yes" },
      { ...chat, node_id: "not-hex" },
      { ...chat, surprise: true },
      "{not json",
    ];
    for (const body of bad) {
      const res = await api("POST", "/api/v1/jobs", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json().error).toBe("bad_request");
      expect(res.json().error_message.length).toBeGreaterThan(0);
    }
    for (const q of ["limit=0", "limit=101", "status=done", "since=yesterday", "bogus=1"]) {
      const res = await api("GET", `/api/v1/jobs?${q}`);
      expect(res.status, q).toBe(400);
    }
    expect(await t.coordinator.ctx.store.listJobs("key:key-test", { limit: 100 })).toHaveLength(0);
    expect(node.assignments).toHaveLength(0);
    expect((await api("GET", "/api/v1/jobs/nope")).status).toBe(404);
    expect((await api("GET", "/api/v1/jobs/nope/stream")).json().error).toBe("not_found");
    // The OpenAI route answers in OpenAI's shape, naming the field at fault.
    expect((await api("POST", "/v1/chat/completions", { model: "tiny" })).json().error).toMatchObject({ code: "bad_request", type: "bad_request", param: "messages" });
  });

  it("answers model_not_found with the available models for a model no node ever served", async () => {
    const res = await api("POST", "/api/v1/jobs", { ...chat, model: "gpt-17" });
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ error: "model_not_found", error_message: expect.stringContaining("tiny") });
  });

  it("requires a valid, unrevoked bearer token", async () => {
    expect((await api("POST", "/api/v1/jobs", chat, {})).json().error).toBe("unauthorized");
    expect((await api("POST", "/api/v1/jobs", chat, { authorization: "Bearer tsk_nope" })).status).toBe(401);
    expect((await api("POST", "/api/v1/jobs", chat, { authorization: "Basic abc" })).status).toBe(401);
    await t.coordinator.ctx.store.revokeApiKey("test", new Date(t.clock.now()));
    const revoked = await api("POST", "/api/v1/jobs", chat);
    expect(revoked.status).toBe(401);
    expect(revoked.json()).toMatchObject({ error: "unauthorized", error_message: expect.stringContaining("revoked") });
    expect(await t.coordinator.ctx.store.listJobs("key:key-test", { limit: 100 })).toHaveLength(0);
  });

  it("serves the models list from online nodes with measured speed", async () => {
    let jobId = "";
    node.onAssign = (job, n) => {
      jobId = job.job_id;
      n.accept(job.job_id);
      n.stream(job.job_id, [{ type: "text-delta", text: "a" }]);
    };
    const done = api("POST", "/api/v1/jobs", { ...chat, stream: true });
    await until(async () => (t.coordinator.ctx.jobs.get(jobId)?.text === "a" ? true : undefined));
    t.clock.advance(1_000);
    node.stream(jobId, [{ type: "text-delta", text: "b" }, { type: "text-delta", text: "c" }, { type: "usage", prompt_tokens: 3, completion_tokens: 3 }, { type: "finish", reason: "stop" }]);
    await done;
    const models = (await api("GET", "/api/v1/models")).json();
    expect(models.models).toEqual([{ id: "tiny", nodes: 1, avg_tokens_per_second: 2, price: { currency: "USDC", unit: "micro_per_1k_tokens", input: 0, output: 0 } }]);
    const openaiModels = (await api("GET", "/v1/models")).json();
    expect(openaiModels.data.map((m: { id: string }) => m.id)).toEqual(["tiny"]);
  });

  it("exposes Prometheus metrics for jobs, routing decisions and nodes", async () => {
    await api("POST", "/api/v1/jobs", { ...chat, stream: true });
    await api("POST", "/api/v1/jobs", { ...chat, model: "nope" });
    const res = await fetch(`${baseUrl}/metrics`);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/tessera_jobs_finished_total\{status="completed",error=""\} 1\n/);
    expect(text).toMatch(/tessera_routing_decision_seconds_count 1\n/);
    expect(text).toMatch(/tessera_routing_decision_cpu_seconds_count 1\n/);
    expect(text).toMatch(/tessera_nodes_online 1\n/);
    expect(text).toMatch(/process_cpu_seconds_total \d/);
  });

  it("works with the official openai client, streaming and not", async () => {
    const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: t.token });
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true, stream_options: { include_usage: true }, temperature: 0 });
    let text = "";
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe("Hello world");
    expect(usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
    const completion = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] });
    expect(completion.choices[0]!.message.content).toBe("Hello world");
    expect(completion.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 2 });
    await expect(client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] })).rejects.toMatchObject({ status: 404 });
  });

  it("cancels the job on the node when a streaming client disconnects", async () => {
    let jobId = "";
    node.onAssign = (job, n) => {
      jobId = job.job_id;
      n.accept(job.job_id);
      n.stream(job.job_id, [{ type: "text-delta", text: "thinking" }]);
    };
    const controller = new AbortController();
    const res = await fetch(`${baseUrl}/api/v1/jobs`, { method: "POST", headers: { ...auth(), "content-type": "application/json" }, body: JSON.stringify({ ...chat, stream: true }), signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await until(async () => (node.cancels.includes(jobId) ? true : undefined));
    const stored = await until(async () => {
      const r = await t.coordinator.ctx.store.getJob(jobId);
      return r?.status === "failed" ? r : undefined;
    });
    expect(stored.error).toBe("cancelled");
  });
});

describe("queueing", () => {
  // The held jobs send no token for a minute: a first-token deadline that long keeps them where they are.
  beforeEach(async () => startWithNode({ pendingTimeoutS: 60, firstTokenTimeoutS: 3600 }));

  it("holds a job while every node is busy, runs it when one frees up, and fails it with no_capacity past the limit", async () => {
    const held: string[] = [];
    node.onAssign = (job, n) => {
      held.push(job.job_id);
      n.accept(job.job_id);
    };
    for (let i = 0; i < 3; i++) await api("POST", "/api/v1/jobs", chat); // node takes 2 (max_concurrency 2)
    await until(async () => (held.length === 2 ? true : undefined));
    expect(t.coordinator.ctx.jobs.pendingCount).toBe(1);
    node.stream(held[0]!, [{ type: "text-delta", text: "a" }, { type: "finish", reason: "stop" }]);
    await until(async () => (held.length === 3 ? true : undefined));
    expect(t.coordinator.ctx.jobs.pendingCount).toBe(0);

    const waiting = (await api("POST", "/api/v1/jobs", chat)).json();
    t.clock.advance(59_000);
    t.coordinator.tick();
    expect((await api("GET", `/api/v1/jobs/${waiting.id}`)).json().status).toBe("pending");
    t.clock.advance(1_000);
    t.coordinator.tick();
    expect((await api("GET", `/api/v1/jobs/${waiting.id}`)).json()).toMatchObject({ status: "failed", error: "no_capacity" });
  });

  it("takes back a job the node does not accept in time", async () => {
    node.onAssign = () => undefined;
    const job = (await api("POST", "/api/v1/jobs", chat)).json();
    await until(async () => (node.assignments.length === 1 ? true : undefined));
    t.clock.advance(5_000);
    t.coordinator.tick();
    await until(async () => (node.cancels.includes(job.id) ? true : undefined));
    expect((await api("GET", `/api/v1/jobs/${job.id}`)).json().status).toBe("pending");
  });
});

describe("rate limits", () => {
  beforeEach(async () => startWithNode({ rateLimitPerMinute: 3 }));

  it("answers 429 with Retry-After once the per-key limit is spent", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await api("GET", "/api/v1/models");
      expect(r.status).toBe(200);
      expect(r.headers.get("x-ratelimit-remaining")).toBe(String(2 - i));
    }
    const limited = await api("GET", "/api/v1/models");
    expect(limited.status).toBe(429);
    expect(limited.json().error).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    t.clock.advance(60_000);
    expect((await api("GET", "/api/v1/models")).status).toBe(200);
  });
});

describe("failover and draining between scripted nodes", () => {
  let second: ScriptedNode;
  let secondId: string;

  beforeEach(async () => {
    await startWithNode();
    const n = newNode();
    secondId = n.id;
    expect((await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", registration(n.id))).statusCode).toBe(200);
    second = new ScriptedNode(baseUrl, n.signer, () => Math.floor(t.clock.now() / 1000));
    await second.connect();
  });
  afterEach(async () => second?.close());

  /** Whichever node gets the job first streams "Hello" (tokens 1, 2) and then loses its session. */
  function firstNodeDiesAfterHello(): { first: () => ScriptedNode } {
    let first: ScriptedNode | undefined;
    for (const n of [node, second]) {
      n.onAssign = (job, self) => {
        if (first) return;
        first = self;
        self.accept(job.job_id);
        self.stream(job.job_id, [{ type: "text-delta", text: "Hel", tokens: [1] }, { type: "text-delta", text: "lo", tokens: [2] }]);
        setTimeout(() => void self.close(), 30);
      };
    }
    return { first: () => first! };
  }

  it("continues on the other node from the text already sent, and splits usage between the nodes", async () => {
    const { first } = firstNodeDiesAfterHello();
    const takeOver = (job: Parameters<ScriptedNode["onAssign"]>[0], self: ScriptedNode) => {
      if (self === first()) return;
      expect(job).toMatchObject({ assistant_prefix: "Hello", assistant_prefix_tokens: [1, 2], sampling: { max_tokens: 10 } });
      self.accept(job.job_id);
      self.stream(job.job_id, [{ type: "text-delta", text: " world", tokens: [3] }, { type: "usage", prompt_tokens: 9, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
    };
    const wrap = (n: ScriptedNode) => {
      const original = n.onAssign;
      n.onAssign = (job, self) => (first() === undefined ? original(job, self) : takeOver(job, self));
    };
    wrap(node);
    wrap(second);
    const res = await api("POST", "/api/v1/jobs", { ...chat, max_tokens: 12, stream: true });
    expect(sseEvents(res.text)).toEqual(['{"text":"Hel"}', '{"text":"lo"}', '{"text":" world"}', "[DONE]"]);
    const id = res.headers.get("x-tessera-job-id")!;
    const job = await until(async () => {
      const r = (await api("GET", `/api/v1/jobs/${id}`)).json();
      return r.status === "completed" ? r : undefined;
    });
    expect(job.result.usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
    const segments = await until(async () => {
      const s = await t.coordinator.ctx.store.listJobSegments(id);
      return s.length === 2 ? s : undefined;
    });
    expect(segments.map((s) => s.completionTokens)).toEqual([2, 1]);
    expect(segments[0]!.nodeId).not.toBe(segments[1]!.nodeId);
  });

  it("hands the first node's prompt token ids to the node that continues (the job's one canonical prompt)", async () => {
    let first: ScriptedNode | undefined;
    let continued: Parameters<ScriptedNode["onAssign"]>[0] | undefined;
    for (const n of [node, second]) {
      n.onAssign = (job, self) => {
        if (!first) {
          first = self;
          expect(job.prompt_tokens).toBeUndefined();
          self.accept(job.job_id);
          self.stream(job.job_id, [{ type: "prompt", tokens: [1, 17, 42, 9] }, { type: "text-delta", text: "Hel", tokens: [1] }, { type: "text-delta", text: "lo", tokens: [2] }]);
          setTimeout(() => void self.close(), 30);
          return;
        }
        continued = job;
        self.accept(job.job_id);
        // A later node's own list never replaces the first one's.
        self.stream(job.job_id, [{ type: "prompt", tokens: [99] }, { type: "text-delta", text: " world", tokens: [3] }, { type: "usage", prompt_tokens: 6, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
      };
    }
    const res = await api("POST", "/api/v1/jobs", { ...chat, max_tokens: 12, stream: true });
    expect(sseEvents(res.text)).toEqual(['{"text":"Hel"}', '{"text":"lo"}', '{"text":" world"}', "[DONE]"]);
    expect(continued).toMatchObject({ assistant_prefix: "Hello", assistant_prefix_tokens: [1, 2], prompt_tokens: [1, 17, 42, 9] });
  });

  it("keeps no prompt ids longer than the job's messages can make: the continuing node renders the prompt itself", async () => {
    const seen: Array<Parameters<ScriptedNode["onAssign"]>[0]> = [];
    let first: ScriptedNode | undefined;
    for (const n of [node, second]) {
      n.onAssign = (job, self) => {
        seen.push(job);
        self.accept(job.job_id);
        if (!first) {
          first = self;
          self.stream(job.job_id, [{ type: "prompt", tokens: Array.from({ length: 20_000 }, (_, i) => i) }, { type: "text-delta", text: "Hel", tokens: [1] }]);
          setTimeout(() => void self.close(), 30);
          return;
        }
        self.stream(job.job_id, [{ type: "text-delta", text: "lo", tokens: [2] }, { type: "usage", prompt_tokens: 6, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
      };
    }
    const res = await api("POST", "/api/v1/jobs", { ...chat, max_tokens: 12, stream: true });
    expect(sseEvents(res.text).at(-1)).toBe("[DONE]");
    expect(seen).toHaveLength(2);
    expect(seen[1]!.prompt_tokens).toBeUndefined();
  });

  it("carries the first node's prompt ids for a chat with tool turns too (one tool format on canonical backends)", async () => {
    const seen: Array<Parameters<ScriptedNode["onAssign"]>[0]> = [];
    let first: ScriptedNode | undefined;
    for (const n of [node, second]) {
      n.onAssign = (job, self) => {
        seen.push(job);
        self.accept(job.job_id);
        if (!first) {
          first = self;
          self.stream(job.job_id, [{ type: "prompt", tokens: [1, 2, 3] }, { type: "text-delta", text: "Hel", tokens: [1] }]);
          setTimeout(() => void self.close(), 30);
          return;
        }
        self.stream(job.job_id, [{ type: "text-delta", text: "lo", tokens: [2] }, { type: "usage", prompt_tokens: 6, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
      };
    }
    const messages = [
      { role: "user", content: "Weather?" },
      { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "weather", arguments: "{}" } }] },
      { role: "tool", content: "12 C", tool_call_id: "c1" },
    ];
    const res = await api("POST", "/api/v1/jobs", { ...chat, messages, max_tokens: 12, stream: true });
    expect(sseEvents(res.text).at(-1)).toBe("[DONE]");
    expect(seen).toHaveLength(2);
    expect(seen[1]).toMatchObject({ prompt_tokens: [1, 2, 3], assistant_prefix: "Hel", assistant_prefix_tokens: [1] });
  });

  it("tells the client node_disconnected when the other node cannot continue the answer", async () => {
    const { first } = firstNodeDiesAfterHello();
    for (const n of [node, second]) {
      const original = n.onAssign;
      n.onAssign = (job, self) => {
        if (first() === undefined) return original(job, self);
        self.accept(job.job_id);
        self.stream(job.job_id, [{ type: "error", code: "bad_request", message: "this backend cannot continue an assistant message" }]);
      };
    }
    const res = await api("POST", "/api/v1/jobs", { ...chat, stream: true });
    const events = sseEvents(res.text);
    expect(events.slice(0, 2)).toEqual(['{"text":"Hel"}', '{"text":"lo"}']);
    expect(JSON.parse(events[2]!)).toMatchObject({ error: "node_disconnected" });
  });

  it("gives a draining node no new jobs while its running job finishes", async () => {
    let runningOn: ScriptedNode | undefined;
    for (const n of [node, second]) {
      n.onAssign = (job, self) => {
        runningOn = self;
        self.accept(job.job_id);
        self.stream(job.job_id, [{ type: "text-delta", text: "a" }]);
        self.send({ type: "draining" });
      };
    }
    const first = (await api("POST", "/api/v1/jobs", chat)).json();
    await until(async () => (runningOn ? true : undefined));
    const drainingNode = runningOn!;
    const other = drainingNode === node ? second : node;
    await new Promise((r) => setTimeout(r, 30));
    other.onAssign = (job, self) => {
      self.accept(job.job_id);
      self.stream(job.job_id, [{ type: "text-delta", text: "b" }, { type: "finish", reason: "stop" }]);
    };
    const next = (await api("POST", "/api/v1/jobs", chat)).json();
    const done = await until(async () => {
      const r = (await api("GET", `/api/v1/jobs/${next.id}`)).json();
      return r.status === "completed" ? r : undefined;
    });
    expect(done.node_id).toBe(drainingNode === node ? secondId : nodeId);
    expect(drainingNode.assignments).toHaveLength(1);
    drainingNode.stream(first.id, [{ type: "finish", reason: "stop" }]);
    expect((await until(async () => {
      const r = (await api("GET", `/api/v1/jobs/${first.id}`)).json();
      return r.status === "completed" ? r : undefined;
    })).result.content).toBe("a");
  });
});
