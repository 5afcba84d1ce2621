import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { SESSION_PATH, generateKeyPair, secretKeySigner, verifyResultCommitment, type JobAssignment, type NodeRegister } from "@tessera/protocol";
import { loadNodeConfig, type SettingFlags } from "../src/config.js";
import { startDaemon, type DaemonHandle } from "../src/daemon.js";
import { createNodeLogger } from "../src/logger.js";
import { FakeClock } from "./fake-clock.js";
import { FakeCoordinator, waitFor } from "./fake-coordinator.js";
import { ScriptedBackend } from "./scripted-backend.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function assignment(jobId: string, model = "tiny"): JobAssignment {
  return {
    type: "job.assign",
    job_id: jobId,
    model,
    messages: [{ role: "user", content: "hello" }],
    sampling: { max_tokens: 16, temperature: 0, top_p: 1 },
  };
}

async function setup(options: { tokens?: string[]; holdAt?: number; flags?: SettingFlags; served?: string[]; tokenIds?: boolean; sha256?: string; replicas?: number } = {}) {
  const clock = new FakeClock(1_800_000_000_000);
  const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
  cleanups.push(() => coordinator.close());
  const replicas: FakeCoordinator[] = [];
  for (let i = 0; i < (options.replicas ?? 0); i++) {
    const replica = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    cleanups.push(() => replica.close());
    replicas.push(replica);
  }
  const home = mkdtempSync(join(tmpdir(), "tessera-daemon-"));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  const config = loadNodeConfig({
    home,
    env: {},
    // Serving from the start (no idle supervisor): a job sent right after the session opens must not race its enlisting.
    flags: { coordinator_url: coordinator.url, "idle.mode": "always", max_concurrency: 2, shutdown_grace_s: 5, ...(replicas.length ? { coordinator_replicas: replicas.map((r) => r.url).join(",") } : {}), ...options.flags },
  });
  const backend = new ScriptedBackend(options.tokens ?? ["Hel", "lo", "!"], {
    holdAt: options.holdAt,
    models: options.served,
    tokenIds: options.tokenIds,
    sha256: options.sha256,
  });
  const lines: string[] = [];
  const { logger } = createNodeLogger({ level: "info", stdout: { write: (line: string) => lines.push(line) } });
  const signer = secretKeySigner(generateKeyPair().secretKeyHex);
  const daemon = await startDaemon(config, {
    createBackend: async () => backend,
    logger,
    signer,
    clock,
    random: () => 0, // backoff waits the floor, so a test advances the clock by a known amount
    detectHardware: async () => HARDWARE,
    gpuStats: async () => [GPU],
  });
  cleanups.push(async () => {
    backend.release();
    await daemon.stop();
  });
  return { clock, coordinator, replicas, backend, daemon, lines, signer };
}

const HARDWARE = { cpu_cores: 8, ram_mb: 32768, gpus: [{ vendor: "nvidia" as const, name: "RTX 4090", vram_mb: 24564 }], tier: ">=24gb" as const };
const GPU = { name: "RTX 4090", memory_total_mb: 24564, memory_used_mb: 1200, utilization_pct: 3 };

const log = (lines: string[]) => lines.join("");

/** A daemon against a fake coordinator that answers every registration with `registerError` (until the test clears it). */
async function startRefused(registerError: NonNullable<FakeCoordinator["registerError"]>) {
  const clock = new FakeClock(1_800_000_000_000);
  const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
  cleanups.push(() => coordinator.close());
  coordinator.registerError = registerError;
  const home = mkdtempSync(join(tmpdir(), "tessera-daemon-"));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url } });
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  const daemon: DaemonHandle = await startDaemon(config, {
    createBackend: async () => new ScriptedBackend(["x"]),
    logger,
    signer: secretKeySigner(generateKeyPair().secretKeyHex),
    clock,
    detectHardware: async () => HARDWARE,
    gpuStats: async () => [],
  });
  return { clock, coordinator, daemon };
}

/** Advances the fake clock step by step, letting real I/O run between steps, until `predicate` holds. */
async function advanceUntil(clock: FakeClock, stepMs: number, what: string, predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (predicate()) return;
    clock.advance(stepMs);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await waitFor(what, predicate);
}

describe("node daemon against a fake coordinator", () => {
  it("registers, opens the session and heartbeats, every request signed by the node key", async () => {
    const { coordinator, daemon, clock, lines, signer } = await setup();
    await daemon.ready;
    expect(coordinator.registers).toHaveLength(1);
    expect(coordinator.registers[0]!.auth).toEqual({ ok: true, publicKeyHex: signer.publicKeyHex });
    expect(coordinator.registers[0]!.body).toMatchObject({
      public_key: signer.publicKeyHex,
      models: [{ id: "tiny", backend: "scripted", size_bytes: 1234 }],
      max_concurrency: 2,
      hardware: HARDWARE,
    });
    expect(coordinator.upgrades).toHaveLength(1);
    expect(coordinator.upgrades[0]).toMatchObject({ path: SESSION_PATH, auth: { ok: true } });
    expect(daemon.nodeId).toBe(signer.publicKeyHex);

    clock.advance(30_000); // the coordinator's heartbeat_interval_s
    await waitFor("first heartbeat", () => coordinator.heartbeats.length === 1);
    expect(coordinator.heartbeats[0]!.auth.ok).toBe(true);
    expect(coordinator.heartbeats[0]!.body).toMatchObject({ type: "heartbeat", loaded_models: ["tiny"], active_jobs: 0, draining: false, gpus: [GPU] });
    await waitFor("heartbeat log line", () => /heartbeat OK \(\d+ ms\)/.test(log(lines)));
    expect(log(lines)).toMatch(/backend: scripted/);
    expect(log(lines)).toMatch(/models: tiny/);
  });

  it("accepts a job at once, streams every part in order and logs tokens and tok/s", async () => {
    const { coordinator, daemon, backend, lines } = await setup();
    await daemon.ready;
    coordinator.send(assignment("job-1"));
    await waitFor("finish part", () => coordinator.partsOf("job-1").some((p) => p.type === "finish"));
    expect(coordinator.messages[0]).toEqual({ type: "job.accept", job_id: "job-1" });
    expect(coordinator.partsOf("job-1")).toEqual([
      { type: "text-delta", text: "Hel" },
      { type: "text-delta", text: "lo" },
      { type: "text-delta", text: "!" },
      { type: "usage", prompt_tokens: 3, completion_tokens: 3 },
      { type: "finish", reason: "stop" },
    ]);
    expect(backend.calls[0]).toMatchObject({ model: "tiny", messages: [{ role: "user", content: "hello" }] });
    coordinator.send({ ...assignment("job-2"), assistant_prefix: "Hel", assistant_prefix_tokens: [7, 8] });
    await waitFor("failover job finished", () => coordinator.partsOf("job-2").some((p) => p.type === "finish"));
    expect(backend.calls[1]).toMatchObject({ assistantPrefix: "Hel", assistantPrefixTokens: [7, 8] });
    // A first run reports its prompt ids; a continuation runs the ids the job carries (issue 17 §0).
    expect(backend.calls[0]).toMatchObject({ reportPromptTokens: true });
    expect(backend.calls[0]!.promptTokens).toBeUndefined();
    coordinator.send({ ...assignment("job-3"), assistant_prefix: "Hel", prompt_tokens: [1, 5, 9] });
    await waitFor("prompt-ids job finished", () => coordinator.partsOf("job-3").some((p) => p.type === "finish"));
    expect(backend.calls[2]).toMatchObject({ promptTokens: [1, 5, 9] });
    expect(backend.calls[2]!.reportPromptTokens).toBeUndefined();
    // Tool chats report their ids too (canonical backends write tools Tessera's one way); raw prompts never do.
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
    coordinator.send({ ...assignment("job-4"), sampling: { ...assignment("job-4").sampling, tools } });
    coordinator.send({ ...assignment("job-5"), raw_prompt: true });
    await waitFor("tool and raw jobs finished", () => ["job-4", "job-5"].every((id) => coordinator.partsOf(id).some((p) => p.type === "finish")));
    expect(backend.calls.find((c) => c.sampling.tools)).toMatchObject({ reportPromptTokens: true });
    expect(backend.calls.find((c) => c.rawPrompt)!.reportPromptTokens).toBeUndefined();
    await waitFor("complete log", () => /job complete: 3 tokens in [\d.]+ s \([\d.]+ tok\/s\)/.test(log(lines)));
    expect(log(lines)).toMatch(/job received/);
  });

  it("signs what it streamed: a result part before finish that verifies against the relayed ids, its seed and its model file", async () => {
    const sha256 = "5e".repeat(32);
    const { coordinator, daemon, signer } = await setup({ tokenIds: true, sha256 });
    await daemon.ready;
    expect((coordinator.registers[0]!.body as NodeRegister).models[0]).toMatchObject({ id: "tiny", sha256 });
    const job = { ...assignment("signed"), sampling: { max_tokens: 16, temperature: 0, top_p: 1, seed: 77 } };
    coordinator.send(job);
    await waitFor("finish part", () => coordinator.partsOf("signed").some((p) => p.type === "finish"));
    const parts = coordinator.partsOf("signed");
    const result = parts.at(-2);
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
    expect(result).toMatchObject({ type: "result", finish_reason: "stop", model_sha256: sha256 });
    const input = { jobId: "signed", modelSha256: sha256, sampling: { temperature: 0, top_p: 1, max_tokens: 16, seed: 77 }, finishReason: "stop" as const, outputTokens: [100, 101, 102], logprobs: [] };
    expect(verifyResultCommitment((result as { signature: string }).signature, input, signer.publicKeyHex)).toBe(true);
    expect(verifyResultCommitment((result as { signature: string }).signature, { ...input, outputTokens: [100, 101] }, signer.publicKeyHex)).toBe(false);
    // A call answer is signed over the ids of its one tool-calls part, like text (spot checks judge it the same way).
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
    coordinator.send({ ...job, job_id: "called", sampling: { ...job.sampling, tools } });
    await waitFor("call finished", () => coordinator.partsOf("called").some((p) => p.type === "finish"));
    const called = coordinator.partsOf("called");
    expect(called[0]).toMatchObject({ type: "tool-calls", tokens: [100, 101, 102] });
    expect(called.at(-2)).toMatchObject({ type: "result", finish_reason: "stop" });
    expect(verifyResultCommitment((called.at(-2) as { signature: string }).signature, { ...input, jobId: "called" }, signer.publicKeyHex)).toBe(true);
  });

  it("rejects jobs for models it does not serve and beyond max_concurrency", async () => {
    const { coordinator, daemon, backend } = await setup({ holdAt: 1, flags: { max_concurrency: 1 } });
    await daemon.ready;
    coordinator.send(assignment("a"));
    await waitFor("job a held", () => backend.held === 1);
    coordinator.send(assignment("b"));
    coordinator.send(assignment("c", "not-served"));
    await waitFor("two rejects", () => coordinator.messages.filter((m) => m.type === "job.reject").length === 2);
    expect(coordinator.messages).toContainEqual({ type: "job.reject", job_id: "b", reason: "at_capacity" });
    expect(coordinator.messages).toContainEqual({ type: "job.reject", job_id: "c", reason: "model_not_served" });
    backend.release();
    await waitFor("job a finished", () => coordinator.partsOf("a").some((p) => p.type === "finish"));
  });

  it("job.cancel aborts the backend call and the stream ends with finish:cancelled", async () => {
    const { coordinator, daemon, backend } = await setup({ holdAt: 1 });
    await daemon.ready;
    coordinator.send(assignment("job-c"));
    await waitFor("job held", () => backend.held === 1);
    coordinator.send({ type: "job.cancel", job_id: "job-c", reason: "client went away" });
    await waitFor("finish part", () => coordinator.partsOf("job-c").some((p) => p.type === "finish"));
    expect(backend.calls[0]!.signal?.aborted).toBe(true);
    expect(coordinator.partsOf("job-c").at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    expect(coordinator.partsOf("job-c").filter((p) => p.type === "text-delta")).toHaveLength(1);
    await waitFor("job slot freed", () => daemon.status().activeJobs === 0);
  });

  it("answers ping with pong", async () => {
    const { coordinator, daemon } = await setup();
    await daemon.ready;
    coordinator.send({ type: "ping", sent_at: 42 });
    await waitFor("pong", () => coordinator.messages.some((m) => m.type === "pong"));
    expect(coordinator.messages).toContainEqual({ type: "pong", sent_at: 42 });
  });

  it("reconnects after the session drops, aborting the jobs that were on it", async () => {
    const { coordinator, daemon, backend, clock } = await setup({ holdAt: 1 });
    await daemon.ready;
    coordinator.send(assignment("lost"));
    await waitFor("job held", () => backend.held === 1);
    coordinator.socket!.terminate();
    await waitFor("job aborted", () => backend.aborted.length === 1);
    await waitFor("reconnect scheduled", () => !daemon.status().sessionOpen && clock.pending > 1);
    clock.advance(1000);
    await waitFor("second session", () => coordinator.sockets.length === 2 && daemon.status().sessionOpen);
    expect(coordinator.upgrades.filter((u) => u.auth.ok)).toHaveLength(2);
    coordinator.send(assignment("after"));
    await waitFor("job on new session", () => coordinator.partsOf("after").some((p) => p.type === "finish") || backend.held === 1);
  });

  it("moves to the next coordinator replica when the one in use dies: registers there, opens its session, heartbeats and serves there", async () => {
    const { coordinator, replicas, daemon, clock, lines } = await setup({ replicas: 2 });
    await daemon.ready;
    const [b, c] = replicas as [FakeCoordinator, FakeCoordinator];
    expect(coordinator.registers).toHaveLength(1);
    await coordinator.close();
    await advanceUntil(clock, 1000, "registered and in session on the second replica", () => b.registers.length === 1 && b.sockets.length === 1 && daemon.status().sessionOpen);
    expect(c.registers).toHaveLength(0);
    expect(log(lines)).toContain(`session unavailable at ${coordinator.url.replace("http", "ws")}/api/v1/nodes/session; moving to ${b.url}`);
    expect(b.upgrades.every((u) => u.auth.ok)).toBe(true);
    await advanceUntil(clock, 30_000, "heartbeat on the second replica", () => b.heartbeats.length >= 1);
    b.send(assignment("on-b"));
    await waitFor("job served through the second replica", () => b.partsOf("on-b").some((p) => p.type === "finish"));
    // And on round the list: the second one dies too, the third takes the node.
    await b.close();
    await advanceUntil(clock, 1000, "in session on the third replica", () => c.sockets.length === 1 && daemon.status().sessionOpen);
    expect(c.registers).toHaveLength(1);
  });

  it("registers with a replica when the first coordinator is down at start", async () => {
    const clock = new FakeClock(1_800_000_000_000);
    const home = mkdtempSync(join(tmpdir(), "tessera-daemon-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const dead = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    await dead.close();
    const live = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    cleanups.push(() => live.close());
    const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: dead.url, coordinator_replicas: live.url } });
    const backend = new ScriptedBackend(["ok"]);
    const daemon = await startDaemon(config, { createBackend: async () => backend, logger: createNodeLogger({ level: "silent" }).logger, signer: secretKeySigner(generateKeyPair().secretKeyHex), clock, random: () => 0, detectHardware: async () => HARDWARE, gpuStats: async () => [GPU] });
    cleanups.push(() => daemon.stop());
    await advanceUntil(clock, 1000, "registered with the live replica", () => live.registers.length === 1 && daemon.status().sessionOpen);
  });

  it("re-registers when the coordinator answers the upgrade with 401 for an unknown node", async () => {
    const { coordinator, daemon, clock, lines } = await setup();
    await daemon.ready;
    coordinator.known.clear(); // the coordinator restarted on a fresh store
    coordinator.socket!.terminate();
    await advanceUntil(clock, 1000, "refused upgrade", () => coordinator.upgrades.length === 2);
    expect(coordinator.upgrades[1]!.auth.ok).toBe(true);
    await waitFor("refusal logged", () => /session refused: HTTP 401 \[unauthorized\] unknown node/.test(log(lines)));
    await advanceUntil(clock, 1000, "re-register and new session", () => coordinator.sockets.length === 2);
    expect(coordinator.registers).toHaveLength(2);
    await waitFor("session open on the node side", () => daemon.status().sessionOpen);
  });

  it("re-registers when a heartbeat is answered 401", async () => {
    const { coordinator, daemon, clock } = await setup();
    await daemon.ready;
    coordinator.known.clear();
    await advanceUntil(clock, 30_000, "re-register", () => coordinator.registers.length === 2);
    await advanceUntil(clock, 30_000, "heartbeat accepted", () => coordinator.heartbeats.length === 1);
  });

  it("stops when its operator is banned mid-run: the session is refused, re-registration answers forbidden", async () => {
    const { coordinator, daemon, clock } = await setup();
    await daemon.ready;
    coordinator.known.clear();
    coordinator.registerError = { status: 403, code: "forbidden" };
    coordinator.socket!.terminate();
    await advanceUntil(clock, 1000, "re-registration refused", () => coordinator.registers.length === 2);
    await expect(daemon.done).rejects.toMatchObject({ code: "forbidden" });
  });

  it("keeps asking while its operator waits for approval, and serves once approved", async () => {
    const { clock, coordinator, daemon } = await startRefused({ status: 403, code: "pending_approval" });
    cleanups.push(() => daemon.stop());
    await advanceUntil(clock, 5_000, "asked three times", () => coordinator.registers.length >= 3);
    coordinator.registerError = undefined;
    await advanceUntil(clock, 30_000, "admitted and connected", () => coordinator.sockets.length === 1);
    await daemon.ready;
  });

  it("stop() drains: says draining, refuses new jobs, lets the in-flight job finish, then goodbye", async () => {
    const { coordinator, daemon, backend, lines } = await setup({ holdAt: 2 });
    await daemon.ready;
    coordinator.send(assignment("inflight"));
    await waitFor("job held", () => backend.held === 1);
    const stopped = daemon.stop();
    await waitFor("draining sent", () => coordinator.messages.some((m) => m.type === "draining"));
    expect(coordinator.messages).toContainEqual({ type: "draining", reason: "shutting_down" });
    coordinator.send(assignment("late"));
    await waitFor("late rejected", () => coordinator.messages.some((m) => m.type === "job.reject"));
    expect(coordinator.messages).toContainEqual({ type: "job.reject", job_id: "late", reason: "draining" });
    expect(coordinator.messages.some((m) => m.type === "goodbye")).toBe(false);
    backend.release();
    await stopped;
    expect(coordinator.partsOf("inflight").at(-1)).toEqual({ type: "finish", reason: "stop" });
    const kinds = coordinator.messages.map((m) => m.type);
    expect(kinds.indexOf("goodbye")).toBeGreaterThan(kinds.lastIndexOf("job.part"));
    expect(backend.closed).toBe(true);
    await waitFor("socket closed", () => coordinator.socket!.readyState === coordinator.socket!.CLOSED);
    expect(log(lines)).toMatch(/draining: 1 job\(s\) in flight/);
  });

  it("stop() aborts jobs still running when the grace period is over", async () => {
    const { coordinator, daemon, backend, clock } = await setup({ holdAt: 1, flags: { shutdown_grace_s: 5 } });
    await daemon.ready;
    coordinator.send(assignment("slow"));
    await waitFor("job held", () => backend.held === 1);
    const stopped = daemon.stop();
    await waitFor("draining sent", () => coordinator.messages.some((m) => m.type === "draining"));
    clock.advance(4_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(backend.aborted).toHaveLength(0);
    clock.advance(1_000);
    await stopped;
    expect(backend.aborted).toHaveLength(1);
    expect(coordinator.partsOf("slow").at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    expect(coordinator.messages.at(-1)).toEqual({ type: "goodbye" });
  });

  it("ends with the coordinator's error when registration is refused for good", async () => {
    const { daemon } = await startRefused({ status: 400, code: "bad_request" });
    await expect(daemon.done).rejects.toMatchObject({ code: "bad_request" });
  });

  it("keeps retrying registration while the coordinator is unreachable", async () => {
    const clock = new FakeClock(1_800_000_000_000);
    const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    cleanups.push(() => coordinator.close());
    coordinator.registerError = { status: 500, code: "internal_error" };
    const home = mkdtempSync(join(tmpdir(), "tessera-daemon-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url, "idle.mode": "always" } }); // no idle-poll timer: the only pending timer is the retry
    const { logger } = createNodeLogger({ level: "silent", stdout: false });
    const daemon = await startDaemon(config, {
      createBackend: async () => new ScriptedBackend(["x"]),
      logger,
      signer: secretKeySigner(generateKeyPair().secretKeyHex),
      clock,
      random: () => 0,
      detectHardware: async () => HARDWARE,
      gpuStats: async () => [],
    });
    cleanups.push(() => daemon.stop());
    await waitFor("first try", () => coordinator.registers.length === 1);
    coordinator.registerError = undefined;
    await waitFor("retry timer", () => clock.pending > 0);
    clock.advance(1000);
    await daemon.ready;
    expect(coordinator.registers).toHaveLength(2);
  });
});
