/**
 * Issue 13, "must show" 3, end to end: hostile text from a client and from a node through the HTTP API on both
 * dialects, and a store whose writes fail. A job ends `completed` or `failed` with a clear code; it never stays
 * `processing`.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SseDecoder } from "@tessera/protocol";
import { storableText } from "../src/store/storable-text.js";
import { describeWithPostgres, probePostgres } from "../src/store/postgres-test-support.js";
import type { Store } from "../src/store/types.js";
import { coordinatorOn, until, type Dialect, type DialectCoordinator } from "./dialect-coordinator.js";

const unreachable = await probePostgres();
const events = (text: string) => new SseDecoder().push(text).map((e) => e.data);

let t: DialectCoordinator | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Waits until the job's record has landed and the coordinator has let go of it, then reads the record. */
async function storedJob(c: DialectCoordinator, id: string) {
  await until(async () => (c.coordinator.ctx.jobs.get(id)?.finished ? true : undefined));
  await c.coordinator.ctx.jobs.get(id)?.persisted;
  return c.coordinator.ctx.store.getJob(id);
}

function defineHostile(dialect: Dialect): void {
  it("runs a prompt with NUL to completion when the node answers with NUL, and serves the answer back exactly", async () => {
    t = await coordinatorOn(dialect);
    const answer = "before\u0000after \uD800 👋🏽 \u202Eevil'); drop table jobs;--";
    t.node.onAssign = (job, node) => {
      node.accept(job.job_id);
      node.stream(job.job_id, [{ type: "text-delta", text: answer }, { type: "usage", prompt_tokens: 3, completion_tokens: 2 }, { type: "finish", reason: "stop" }]);
    };
    const prompt = [{ role: "user", content: "nul\u0000 in the prompt, and 'quotes'); drop table jobs;--" }];
    const res = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: prompt, stream: true });
    expect(res.status).toBe(200);
    const stream = events(res.text);
    expect(stream.at(-1)).toBe("[DONE]");
    expect(t.node.assignments[0]?.messages).toEqual(prompt);
    const id = t.node.assignments[0]!.job_id;
    const record = await storedJob(t, id);
    // JSON escapes NUL and the lone surrogate on every hop, and the content is stored encrypted: all of it exact.
    const relayed = answer;
    expect(record).toMatchObject({ status: "completed", messages: prompt, content: relayed });
    t.clock.advance(61_000);
    t.coordinator.tick();
    expect((await t.api("GET", `/api/v1/jobs/${id}`)).json()).toMatchObject({ status: "completed", result: { content: relayed } });
  });

  it("fails a job with the node's code when its error message holds NUL, and stores the message made storable", async () => {
    t = await coordinatorOn(dialect);
    const message = "backend said \u0000 no";
    t.node.onAssign = (job, node) => {
      node.accept(job.job_id);
      node.stream(job.job_id, [{ type: "error", code: "bad_request", message }]);
    };
    const res = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "\u0000" }], stream: true });
    expect(events(res.text)).toEqual([JSON.stringify({ error: "bad_request", message })]);
    const record = await storedJob(t, t.node.assignments[0]!.job_id);
    expect(record).toMatchObject({ status: "failed", error: "bad_request", errorMessage: storableText(message) });
  });
}

describe("hostile text through the API on SQLite", () => defineHostile("sqlite"));
describeWithPostgres("hostile text through the API on PostgreSQL", unreachable, () => defineHostile("postgres"));

/** The real store, except that the writes `fails` picks throw as a broken database would. */
function failing(fails: (patch: Parameters<Store["updateJob"]>[1]) => boolean, insertFails = false) {
  return (store: Store): Store =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === "updateJob") {
          return (id: string, patch: Parameters<Store["updateJob"]>[1], options?: Parameters<Store["updateJob"]>[2]) =>
            fails(patch) ? Promise.reject(new Error("disk I/O error")) : target.updateJob(id, patch, options);
        }
        if (prop === "insertJob" && insertFails) return () => Promise.reject(new Error("disk I/O error"));
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
}

describe("a store whose writes fail", () => {
  it("fails the running job with store_error, tells the streaming client, and stores the failure", async () => {
    t = await coordinatorOn("sqlite", { wrapStore: failing((patch) => patch.status === "processing") });
    t.node.onAssign = (job, node) => {
      node.accept(job.job_id);
      // Parts after the failure are for a job that is over: ignored.
      setTimeout(() => node.stream(job.job_id, [{ type: "text-delta", text: "late" }, { type: "finish", reason: "stop" }]), 50);
    };
    const res = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true });
    const stream = events(res.text);
    expect(JSON.parse(stream.at(-1)!)).toMatchObject({ error: "store_error" });
    const id = t.node.assignments[0]!.job_id;
    expect(t.node.cancels).toContain(id);
    expect(await storedJob(t, id)).toMatchObject({ status: "failed", error: "store_error" });
    expect((await t.api("GET", `/api/v1/jobs/${id}`)).json()).toMatchObject({ status: "failed", error: "store_error" });
  });

  it("answers store_error (500, retryable) when the job cannot be stored at all, and stops it on the node it went to", async () => {
    t = await coordinatorOn("sqlite", { wrapStore: failing(() => false, true) });
    // The node takes the job and holds it: the job goes to a node while its record is written.
    t.node.onAssign = (job, node) => node.accept(job.job_id);
    const res = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }] });
    expect(res.status).toBe(500);
    expect(res.json()).toMatchObject({ error: "store_error" });
    const node = t.node;
    const assigned = node.assignments.map((a) => a.job_id);
    await until(async () => (node.cancels.length === assigned.length ? true : undefined));
    expect(node.cancels).toEqual(assigned);
    // Nothing of it is kept: not listed, not fetchable.
    for (const id of assigned) expect((await t.api("GET", `/api/v1/jobs/${id}`)).status).toBe(404);
  });

  it("turns a completed job whose record could not be written into a failed one, and records that", async () => {
    t = await coordinatorOn("sqlite", { wrapStore: failing((patch) => patch.status === "completed") });
    const created = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }] });
    const id: string = created.json().id;
    const record = await until(async () => {
      const r = await t!.coordinator.ctx.store.getJob(id);
      return r?.status === "failed" ? r : undefined;
    });
    expect(record).toMatchObject({ error: "store_error" });
    expect((await t.api("GET", `/api/v1/jobs/${id}`)).json()).toMatchObject({ status: "failed", error: "store_error" });
  });

  it("leaves no job processing in the store when every write fails: the restart sweep fails it", async () => {
    t = await coordinatorOn("sqlite", { wrapStore: failing(() => true) });
    t.node.onAssign = (job, node) => node.accept(job.job_id);
    const res = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true });
    expect(JSON.parse(events(res.text).at(-1)!)).toMatchObject({ error: "store_error" });
    const id = t.node.assignments[0]!.job_id;
    // The store still says pending (nothing could be written); what a restart does with such a record:
    expect((await t.coordinator.ctx.store.getJob(id))?.status).toBe("pending");
    expect(await t.coordinator.ctx.store.failOwnJobs(t.coordinator.replica.id, new Date(t.clock.now() + 1), new Date(t.clock.now()))).toEqual([id]);
  });
});
