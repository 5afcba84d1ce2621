import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { type NodeRegister, SESSION_PATH, type Signer, signRequest } from "@tessera/protocol";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";

/** The error code of a refusal in either shape: native (`/api/v1`) or OpenAI's (`/v1`). */
function codeOf(body: { error: string | { code: string } }): string {
  return typeof body.error === "string" ? body.error : body.error.code;
}

let t: TestCoordinator;
afterEach(async () => {
  vi.restoreAllMocks();
  await t?.close();
});

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

/** A request signed over exactly `payload` (which need not be JSON). */
function signedRaw(signer: Signer, url: string, payload: string, remoteAddress = "127.0.0.1") {
  const headers = signRequest(signer, { method: "POST", path: url, body: payload }, { nowSeconds: Math.floor(t.clock.now() / 1000) });
  return t.coordinator.app.inject({ method: "POST", url, remoteAddress, headers: { ...headers, "content-type": "application/json" }, payload });
}

function register(reg: NodeRegister, signer: Signer, remoteAddress = "127.0.0.1") {
  return signedRaw(signer, "/api/v1/nodes/register", JSON.stringify(reg), remoteAddress);
}

describe("credentials are checked from the headers, before the body is read", () => {
  it.each(["/api/v1/jobs", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/v1/nodes/register"])("%s without credentials: 401 and the body never parsed", async (url) => {
    t = await testCoordinator();
    const parse = vi.spyOn(JSON, "parse");
    const payload = nested(100_000);
    const res = await t.coordinator.app.inject({ method: "POST", url, headers: { "content-type": "application/json" }, payload });
    expect(res.statusCode).toBe(401);
    expect(codeOf(res.json())).toBe("unauthorized");
    expect(parse.mock.calls.some(([text]) => text === payload)).toBe(false);
  });

  it("a body signed by a bad signature is refused before it is parsed", async () => {
    t = await testCoordinator();
    const node = newNode();
    const payload = JSON.stringify(registration(node.id));
    const headers = signRequest(node.signer, { method: "POST", path: "/api/v1/nodes/register", body: payload + " " }, { nowSeconds: Math.floor(t.clock.now() / 1000) });
    const parse = vi.spyOn(JSON, "parse");
    const res = await t.coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", headers: { ...headers, "content-type": "application/json" }, payload });
    expect(res.statusCode).toBe(401);
    expect(parse.mock.calls.some(([text]) => text === payload)).toBe(false);
    expect(await t.coordinator.ctx.store.getNode(node.id)).toBeUndefined();
  });
});

/** Streams `size` bytes of `[` with backpressure, as a client would, and stops once an answer has come. */
function upload(port: number, path: string, size: number): Promise<{ status: number; sent: number; error?: string }> {
  return new Promise((resolve) => {
    let answered = false;
    let sent = 0;
    const chunk = Buffer.alloc(65536, "[");
    const req = httpRequest({ host: "127.0.0.1", port, path, method: "POST", headers: { "content-type": "application/json", "content-length": size } }, (res) => {
      answered = true;
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, sent }));
    });
    req.on("error", (err) => !answered && resolve({ status: 0, sent, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    void (async () => {
      while (sent < size && !answered && !req.destroyed) {
        const piece = chunk.subarray(0, Math.min(chunk.length, size - sent));
        sent += piece.length;
        if (!req.write(piece)) await new Promise((r) => req.once("drain", r));
      }
    })();
  });
}

describe("a refused upload over a real socket", () => {
  it.each([
    ["/api/v1/nodes/register", 401],
    ["/api/v1/jobs", 401],
  ])("%s without credentials: the client still sending gets its %i, not a broken pipe, long before its 8 MiB are sent", async (path, status) => {
    t = await testCoordinator();
    await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = t.coordinator.app.server.address() as { port: number };
    const res = await upload(port, path, 8 * 1024 * 1024 - 1);
    expect(res).toMatchObject({ status });
    expect(res.sent).toBeLessThan(8 * 1024 * 1024 - 1);
  });

  it("in open mode a too-deep upload gets its 400 at the first chunks", async () => {
    t = await testCoordinator({ open: true });
    await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = t.coordinator.app.server.address() as { port: number };
    const res = await upload(port, "/v1/chat/completions", 8 * 1024 * 1024 - 1);
    expect(res).toMatchObject({ status: 400 });
    expect(res.sent).toBeLessThan(8 * 1024 * 1024 - 1);
  });
});

describe("body caps per route", () => {
  it("refuses a node body over 64 KiB with 413 payload_too_large", async () => {
    t = await testCoordinator();
    const node = newNode();
    const reg = { ...registration(node.id), version: "0.1.0", padding: "x".repeat(64 * 1024) };
    const res = await signedRaw(node.signer, "/api/v1/nodes/register", JSON.stringify(reg));
    expect(res.statusCode).toBe(413);
    expect(codeOf(res.json())).toBe("payload_too_large");
    expect(await t.coordinator.ctx.store.getNode(node.id)).toBeUndefined();
  });

  it("takes a 1 MiB chat body but refuses one over 8 MiB with 413", async () => {
    t = await testCoordinator();
    const auth = { authorization: `Bearer ${t.token}`, "content-type": "application/json" };
    const big = JSON.stringify({ model: "nope", messages: [{ role: "user", content: "x".repeat(1024 * 1024) }] });
    const ok = await t.coordinator.app.inject({ method: "POST", url: "/v1/chat/completions", headers: auth, payload: big });
    expect(ok.statusCode).not.toBe(413);
    const huge = JSON.stringify({ model: "nope", messages: [{ role: "user", content: "x".repeat(8 * 1024 * 1024) }] });
    const refused = await t.coordinator.app.inject({ method: "POST", url: "/v1/chat/completions", headers: auth, payload: huge });
    expect(refused.statusCode).toBe(413);
    expect(codeOf(refused.json())).toBe("payload_too_large");
  });
});

describe("JSON nesting bound", () => {
  it("refuses a body nested deeper than 64 with 400 naming the depth, without JSON.parse", async () => {
    t = await testCoordinator();
    const parse = vi.spyOn(JSON, "parse");
    const payload = JSON.stringify({ model: "tiny", messages: JSON.parse(nested(70)) as unknown });
    parse.mockClear();
    const res = await t.coordinator.app.inject({ method: "POST", url: "/api/v1/jobs", headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" }, payload });
    expect(res.statusCode).toBe(400);
    expect(codeOf(res.json())).toBe("bad_request");
    expect(res.json().error_message).toMatch(/deeper than 64/);
    expect(parse.mock.calls.some(([text]) => text === payload)).toBe(false);
  });

  it("counts brackets inside strings as text", async () => {
    t = await testCoordinator();
    const payload = JSON.stringify({ model: "nope", messages: [{ role: "user", content: "[[[[{{{{\\\"".repeat(100) }] });
    const res = await t.coordinator.app.inject({ method: "POST", url: "/api/v1/jobs", headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" }, payload });
    expect(res.json().error_message ?? "").not.toMatch(/deeper/);
  });

  it("in open mode an anonymous deep body is answered 400 at once, and the per-address limit applies before the body", async () => {
    t = await testCoordinator({ open: true, rateLimitPerMinute: 3 });
    const send = () => t.coordinator.app.inject({ method: "POST", url: "/v1/chat/completions", headers: { "content-type": "application/json" }, payload: nested(1_000_000) });
    for (let i = 0; i < 3; i++) {
      const res = await send();
      expect(res.statusCode).toBe(400);
      expect(codeOf(res.json())).toBe("bad_request");
    }
    const parse = vi.spyOn(JSON, "parse");
    const limited = await send();
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["retry-after"]).toBeDefined();
    expect(parse).not.toHaveBeenCalled();
  });
});

describe("failed authentications are throttled per address", () => {
  it("answers 429 rate_limited with Retry-After after 10 wrong tokens, before any store lookup, and lets the address back after the lockout", async () => {
    t = await testCoordinator();
    const lookups = vi.spyOn(t.coordinator.ctx.store, "findApiKeyByHash");
    const guess = (token: string, remoteAddress = "203.0.113.7") =>
      t.coordinator.app.inject({ method: "GET", url: "/api/v1/jobs", remoteAddress, headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 10; i++) expect((await guess(`tsk_wrong${i}`)).statusCode).toBe(401);
    lookups.mockClear();
    const blocked = await guess(t.token); // even the right token: the address is locked out, nothing is looked up
    expect(blocked.statusCode).toBe(429);
    expect(codeOf(blocked.json())).toBe("rate_limited");
    expect(Number(blocked.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(blocked.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect(lookups).not.toHaveBeenCalled();
    expect((await guess(t.token, "198.51.100.1")).statusCode).toBe(200); // another address is unaffected
    t.clock.advance(61_000);
    expect((await guess(t.token)).statusCode).toBe(200);
  });

  it("counts bad node signatures too", async () => {
    t = await testCoordinator();
    const node = newNode();
    const other = newNode();
    for (let i = 0; i < 10; i++) {
      const res = await signedInject(t, other.signer, "POST", "/api/v1/nodes/heartbeat", { type: "heartbeat", gpus: [], loaded_models: [], active_jobs: 0, max_concurrency: 1 }, { signAs: { body: `{"x":${i}}` } });
      expect(res.statusCode).toBe(401);
    }
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
    expect(res.statusCode).toBe(429);
    expect(res.headers["retry-after"]).toBeDefined();
  });

  it("counts bad signatures on the node session upgrade, and refuses that address's next upgrade with 429", async () => {
    t = await testCoordinator();
    await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
    const url = `ws://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}${SESSION_PATH}`;
    const node = newNode();
    expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    const upgrade = (signedPath: string) =>
      new Promise<{ status: number; retryAfter?: string }>((resolve, reject) => {
        const headers = signRequest(node.signer, { method: "GET", path: signedPath }, { nowSeconds: Math.floor(t.clock.now() / 1000) });
        const ws = new WebSocket(url, { headers });
        ws.once("open", () => {
          ws.close();
          resolve({ status: 101 });
        });
        ws.once("unexpected-response", (_req, res) => {
          const retryAfter = res.headers["retry-after"];
          resolve({ status: res.statusCode ?? 0, ...(typeof retryAfter === "string" ? { retryAfter } : {}) });
        });
        ws.once("error", (err) => (err.message.includes("Unexpected server response") ? undefined : reject(err)));
      });
    for (let i = 0; i < 10; i++) expect((await upgrade(`/somewhere-else-${i}`)).status).toBe(401);
    const refused = await upgrade(SESSION_PATH); // correctly signed, but from an address that has been guessing
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    t.clock.advance(61_000);
    expect((await upgrade(SESSION_PATH)).status).toBe(101);
  });

  it("does not count requests that bring no credential", async () => {
    t = await testCoordinator();
    for (let i = 0; i < 20; i++) {
      expect((await t.coordinator.app.inject({ method: "GET", url: "/api/v1/jobs" })).statusCode).toBe(401);
    }
    expect((await t.coordinator.app.inject({ method: "GET", url: "/api/v1/jobs", headers: { authorization: `Bearer ${t.token}` } })).statusCode).toBe(200);
  });
});

describe("what a node says about itself is validated", () => {
  const hostile: Array<[string, (reg: NodeRegister) => unknown]> = [
    ["a GPU name with markup", (reg) => ({ ...reg, hardware: { ...reg.hardware, gpus: [{ vendor: "nvidia", name: "<script>alert(1)</script>", vram_mb: 24_000 }] } })],
    ["a model id with markup", (reg) => ({ ...reg, models: [{ id: "<img src=x onerror=alert(1)>", backend: "embedded" }] })],
    ["a model id with a space", (reg) => ({ ...reg, models: [{ id: "tiny model", backend: "embedded" }] })],
    ["a model id with a NUL", (reg) => ({ ...reg, models: [{ id: "tiny\u0000", backend: "embedded" }] })],
    ["a 129-character model id", (reg) => ({ ...reg, models: [{ id: "m".repeat(129), backend: "embedded" }] })],
    ["vram_mb of 2^53 - 1", (reg) => ({ ...reg, hardware: { ...reg.hardware, gpus: [{ vendor: "nvidia", name: "RTX 4090", vram_mb: 9007199254740991 }] } })],
    ["ram_mb past 64 TiB", (reg) => ({ ...reg, hardware: { ...reg.hardware, ram_mb: 2 ** 40 } })],
    ["65 models", (reg) => ({ ...reg, models: Array.from({ length: 65 }, (_, i) => ({ id: `model-${i}`, backend: "embedded" })) })],
    ["a backend name with markup", (reg) => ({ ...reg, models: [{ id: "tiny", backend: "<b>" }] })],
    ["a version with a control character", (reg) => ({ ...reg, version: "0.1.0\u001b[31m" })],
    ["a GPU name with a bidi override", (reg) => ({ ...reg, hardware: { ...reg.hardware, gpus: [{ vendor: "nvidia", name: "RTX\u202e0904", vram_mb: 24_000 }] } })],
  ];
  for (const [name, mutate] of hostile) {
    it(`refuses a registration with ${name} (400, nothing stored)`, async () => {
      t = await testCoordinator();
      const node = newNode();
      const res = await signedRaw(node.signer, "/api/v1/nodes/register", JSON.stringify(mutate(registration(node.id))));
      expect(res.statusCode).toBe(400);
      expect(codeOf(res.json())).toBe("bad_request");
      expect(await t.coordinator.ctx.store.getNode(node.id)).toBeUndefined();
      expect(t.coordinator.ctx.registry.get(node.id)).toBeUndefined();
    });
  }

  it("takes the model ids real users load, and 64 of them", async () => {
    t = await testCoordinator();
    const node = newNode();
    const ids = ["qwen2.5:7b-instruct-q4_K_M", "meta-llama/Llama-3.1-8B-Instruct", "tessera-demo", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "llama3.2:latest"];
    const reg = {
      ...registration(node.id, [...ids, ...Array.from({ length: 64 - ids.length }, (_, i) => `extra-${i}`)]),
      hardware: { cpu_cores: 16, ram_mb: 131072, gpus: [{ vendor: "nvidia" as const, name: "NVIDIA H200", vram_mb: 143_771 }] },
    };
    const res = await register(reg, node.signer);
    expect(res.statusCode).toBe(200);
    expect((await t.coordinator.ctx.store.getNode(node.id))?.models.map((m) => m.id)).toEqual(expect.arrayContaining(ids));
  });

  it("refuses a heartbeat naming a hostile model and keeps the stored record", async () => {
    t = await testCoordinator();
    const node = newNode();
    expect((await register(registration(node.id), node.signer)).statusCode).toBe(200);
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", {
      type: "heartbeat",
      gpus: [{ name: "<script>", memory_total_mb: 1, memory_used_mb: 0, utilization_pct: 0 }],
      loaded_models: ["<img onerror=alert(1)>"],
      active_jobs: 0,
      max_concurrency: 2,
    });
    expect(res.statusCode).toBe(400);
    expect((await t.coordinator.ctx.store.getNode(node.id))?.models.map((m) => m.id)).toEqual(["tiny"]);
  });
});

describe("registrations are limited per source address", () => {
  it("answers the 11th registration in a minute from one address with 429 and Retry-After; other addresses and the next minute go through", async () => {
    t = await testCoordinator();
    for (let i = 0; i < 10; i++) {
      const node = newNode();
      expect((await register(registration(node.id), node.signer, "203.0.113.9")).statusCode).toBe(200);
    }
    const late = newNode();
    const refused = await register(registration(late.id), late.signer, "203.0.113.9");
    expect(refused.statusCode).toBe(429);
    expect(codeOf(refused.json())).toBe("rate_limited");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(await t.coordinator.ctx.store.getNode(late.id)).toBeUndefined();
    expect((await register(registration(late.id), late.signer, "203.0.113.10")).statusCode).toBe(200);
    t.clock.advance(60_000);
    const next = newNode();
    expect((await register(registration(next.id), next.signer, "203.0.113.9")).statusCode).toBe(200);
  });
});
