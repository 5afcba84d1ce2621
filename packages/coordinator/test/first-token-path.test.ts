/**
 * What stands between a client's request and its first token on the coordinator (docs/operator-coordinator.md,
 * "The path to the first token"): the job goes to its node before its record is sealed and written (also when the
 * node is reached over the bus, whose client writes on a microtask), a stream's head leaves with its first chunk
 * in one write, and a streaming client is told how long its connection may idle, so it does not reconnect for the next.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Store } from "../src/store/types.js";
import type { Worker } from "../src/workers/worker.js";
import { coordinatorOn, type DialectCoordinator } from "./dialect-coordinator.js";
import type { ScriptedNode } from "./scripted-node.js";

let t: DialectCoordinator | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** The real store, calling `seen` with each job as its record is built (when `insertJob` is called). */
function beforeInsert(seen: (job: Parameters<Store["insertJob"]>[0]) => void) {
  return (store: Store): Store =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === "insertJob") {
          return (job: Parameters<Store["insertJob"]>[0]) => {
            seen(job);
            return target.insertJob(job);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
}

/** The scripted node takes the job and answers "hi" in one token. */
const answerHi: ScriptedNode["onAssign"] = (job, node) => {
  node.accept(job.job_id);
  node.stream(job.job_id, [{ type: "text-delta", text: "hi" }, { type: "usage", prompt_tokens: 1, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
};

describe("the path to the first token", () => {
  it("sends a job to its node before it builds the job's record, and still stores it", async () => {
    let c: DialectCoordinator | undefined;
    const assignedWhenBuilt: boolean[] = [];
    const wrapStore = beforeInsert((job) => assignedWhenBuilt.push(c!.coordinator.ctx.registry.get(c!.nodeId)?.activeJobs.has(job.id) === true));
    t = c = await coordinatorOn("sqlite", { wrapStore });
    t.node.onAssign = answerHi;
    const res = await t.api("POST", "/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hello" }] });
    expect(res.status).toBe(200);
    expect(res.json().choices[0].message.content).toBe("hi");
    expect(assignedWhenBuilt).toEqual([true]);
    const id = t.node.assignments[0]!.job_id;
    await t.coordinator.ctx.jobs.get(id)?.persisted;
    expect(await t.coordinator.ctx.store.getJob(id)).toMatchObject({ status: "completed", content: "hi" });
  });

  it("builds the record after a worker that sends on a microtask (the bus client to a remote node) has sent", async () => {
    const order: string[] = [];
    const c = (t = await coordinatorOn("sqlite", { wrapStore: beforeInsert(() => order.push("record built")) }));
    const node = c.coordinator.ctx.registry.get(c.nodeId)!;
    const local: Worker = node.worker!;
    // As RemoteWorker over NATS: the client queues the command and writes it on a microtask (nats-core's flush).
    const onTheBus: Worker = {
      id: local.id,
      assign: (job) =>
        queueMicrotask(() => {
          order.push("assignment sent");
          local.assign(job);
        }),
      cancel: (jobId, reason) => local.cancel(jobId, reason),
      rtt: () => local.rtt(),
      close: (code, reason) => local.close(code, reason),
    };
    node.worker = onTheBus;
    t.node.onAssign = answerHi;
    const res = await t.api("POST", "/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hello" }] });
    expect(res.status).toBe(200);
    expect(order).toEqual(["assignment sent", "record built"]);
  });

  it("writes a stream's head and its first chunk to the socket in one write", async () => {
    t = await coordinatorOn("sqlite");
    const writes: string[] = [];
    t.coordinator.app.server.on("connection", (socket) => {
      const write = socket._write.bind(socket);
      const writev = socket._writev!.bind(socket);
      socket._write = (chunk, encoding, cb) => {
        writes.push(String(chunk));
        write(chunk, encoding, cb);
      };
      socket._writev = (chunks, cb) => {
        writes.push(chunks.map((c) => String(c.chunk)).join(""));
        writev(chunks, cb);
      };
    });
    t.node.onAssign = answerHi;
    const res = await t.api("POST", "/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hello" }], stream: true });
    expect(res.status).toBe(200);
    expect(res.text).toContain('"content":"hi"');
    const head = writes.findIndex((w) => w.startsWith("HTTP/1.1 200"));
    expect(head).toBeGreaterThanOrEqual(0);
    // The head, then the role chunk, in the same write.
    expect(writes[head]).toMatch(/^HTTP\/1\.1 200[\s\S]*\r\n\r\n[\s\S]*data: \{[^\n]*"role":"assistant"/);
  });

  it("tells a streaming client how long its idle connection is kept, as it tells every other client", async () => {
    t = await coordinatorOn("sqlite");
    t.node.onAssign = answerHi;
    const body = { model: "tiny", messages: [{ role: "user", content: "hello" }] };
    const streamed = await t.api("POST", "/v1/chat/completions", { ...body, stream: true });
    const whole = await t.api("POST", "/v1/chat/completions", body);
    expect([streamed.status, whole.status]).toEqual([200, 200]);
    // Clients such as undici (Node's fetch, the openai package) keep an idle connection as long as this says, and
    // for 4 s when it says nothing.
    const kept = `timeout=${t.coordinator.app.server.keepAliveTimeout / 1000}`;
    expect(whole.headers.get("keep-alive")).toBe(kept);
    expect(streamed.headers.get("keep-alive")).toBe(kept);
    expect(streamed.headers.get("connection")).toBe("keep-alive");
    expect(streamed.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  });
});
