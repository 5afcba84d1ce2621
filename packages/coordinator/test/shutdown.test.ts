import { describe, expect, it } from "vitest";
import { newNode, registration, signedInject, testCoordinator } from "./harness.js";

/** The in-process half of an orderly shutdown; the real-process half is packages/cli/test/shutdown.test.ts. */
describe("coordinator shutdown", () => {
  it("answers every request after stopAccepting with 503 shutting_down and Retry-After, at once", async () => {
    const t = await testCoordinator();
    const app = t.coordinator.app;
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    t.coordinator.stopAccepting();
    for (const url of ["/healthz", "/v1/models", "/api/v1/jobs", "/no/such/route"]) {
      const res = await app.inject({ method: "GET", url, headers: { authorization: `Bearer ${t.token}` } });
      expect(res.statusCode, url).toBe(503);
      expect(res.headers["retry-after"], url).toBe("5");
      expect(JSON.stringify(res.json()), url).toContain("shutting_down");
    }
    await t.close();
  });

  it("still takes a node's signed heartbeat while it shuts down (a draining node keeps reporting in)", async () => {
    const t = await testCoordinator();
    const node = newNode();
    expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    t.coordinator.stopAccepting();
    const hb = { type: "heartbeat", gpus: [], loaded_models: [], active_jobs: 1, max_concurrency: 2, draining: true };
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", hb);
    expect(res.statusCode).toBe(200);
    expect((await t.coordinator.app.inject({ method: "GET", url: "/v1/models", headers: { authorization: `Bearer ${t.token}` } })).statusCode).toBe(503);
    await t.close();
  });

  it("gives a request waiting for its job the 503 shutting_down, and closing twice is harmless", async () => {
    const t = await testCoordinator();
    const node = newNode();
    // A node that serves "tiny" but has no session: the job is queued, so its request is in flight at shutdown.
    expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    const waiting = t.coordinator.app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" },
      payload: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }] }),
    });
    while (t.coordinator.ctx.jobs.pendingCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const closing = t.close();
    const res = await waiting;
    expect(res.statusCode).toBe(503);
    expect(res.headers["retry-after"]).toBe("5");
    expect(JSON.stringify(res.json())).toContain("shutting_down");
    await closing;
    await t.coordinator.close();
  });
});
