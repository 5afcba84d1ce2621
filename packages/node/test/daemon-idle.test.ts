import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { generateKeyPair, secretKeySigner, type JobAssignment, type NodeHeartbeat } from "@tessera/protocol";
import { loadNodeConfig } from "../src/config.js";
import { startDaemon } from "../src/daemon.js";
import { createNodeLogger } from "../src/logger.js";
import type { IdleSample } from "../src/idle/index.js";
import { FakeClock } from "./fake-clock.js";
import { FakeCoordinator, waitFor } from "./fake-coordinator.js";
import { ScriptedBackend } from "./scripted-backend.js";

/**
 * The idle policy inside the daemon, against the fake coordinator with an injected probe and clock: the owner comes
 * back mid-job → `draining`, the job handed back with a retryable `no_capacity` part after the grace (500 ms), the model
 * unloaded, new jobs rejected; the owner leaves → after 90 s of quiet a heartbeat with `draining: false`.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const assignment = (jobId: string): JobAssignment => ({
  type: "job.assign",
  job_id: jobId,
  model: "tiny",
  messages: [{ role: "user", content: "hello" }],
  sampling: { max_tokens: 16, temperature: 0, top_p: 1 },
});
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("daemon idle policy", () => {
  it("drains on use (job handed back, model unloaded, jobs refused) and re-enlists after enlist_after of quiet", async () => {
    const clock = new FakeClock(1_800_000_000_000);
    const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    cleanups.push(() => coordinator.close());
    const home = mkdtempSync(join(tmpdir(), "tessera-daemon-idle-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url, shutdown_grace_s: 1 } });
    const backend = Object.assign(new ScriptedBackend(["Hel", "lo", "!"], { holdAt: 1 }), { unloads: 0, async unload() { this.unloads++; } });
    let sample: IdleSample = { inputIdleMs: 600_000, otherGpuUtil: 0, onBattery: false };
    const lines: string[] = [];
    const { logger } = createNodeLogger({ level: "info", stdout: { write: (line: string) => lines.push(line) } });
    const daemon = await startDaemon(config, {
      createBackend: async () => backend,
      logger,
      signer: secretKeySigner(generateKeyPair().secretKeyHex),
      clock,
      random: () => 0,
      detectHardware: async () => ({ cpu_cores: 8, ram_mb: 32768, gpus: [] }),
      gpuStats: async () => [],
      idleProbe: { sample: async () => sample },
    });
    cleanups.push(async () => {
      backend.release();
      await daemon.stop();
    });
    await daemon.ready;
    await waitFor("enrolled", () => daemon.status().idle?.state === "enrolled");

    coordinator.send(assignment("j1"));
    await waitFor("first part", () => coordinator.partsOf("j1").length > 0);

    // The owner types: within one poll the node says draining; after the 500 ms grace the job is handed back.
    sample = { inputIdleMs: 0, otherGpuUtil: 0, onBattery: false };
    clock.advance(1000);
    await waitFor("draining", () => coordinator.messages.some((m) => m.type === "draining"));
    // The coordinator is told why, as a code from protocol DRAIN_REASONS (the words stay in this machine's log).
    expect(coordinator.messages).toContainEqual({ type: "draining", reason: "owner_active" });
    expect(daemon.status().idle?.state).toBe("draining");
    coordinator.send(assignment("j2"));
    await waitFor("j2 rejected", () => coordinator.messages.some((m) => m.type === "job.reject" && m.job_id === "j2"));
    expect(coordinator.messages.find((m) => m.type === "job.reject" && m.job_id === "j2")).toMatchObject({ reason: "draining" });
    clock.advance(1000);
    await waitFor("away", () => daemon.status().idle?.state === "away");
    await waitFor("j1 handed back", () => coordinator.partsOf("j1").some((p) => p.type === "finish"));
    const parts = coordinator.partsOf("j1");
    expect(parts.slice(-2)).toEqual([
      { type: "error", code: "no_capacity", message: expect.stringMatching(/node stepped aside \(input 0.0 s ago\)/) },
      { type: "finish", reason: "error" },
    ]);
    expect(parts.filter((p) => p.type === "finish")).toHaveLength(1);
    expect(backend.unloads).toBe(1);
    expect(daemon.status().idle?.reason).toMatch(/away: input 0.0 s ago \(1 job\(s\) in flight, 0 finished, 1 handed to other nodes/);
    const file = JSON.parse(readFileSync(join(config.paths.dataDir, "idle-state.json"), "utf8")) as { state: string };
    expect(file.state).toBe("away");

    // The owner leaves: waiting at once, enrolled 90 s after the last input, with a heartbeat saying draining: false.
    sample = { inputIdleMs: 600_000, otherGpuUtil: 0, onBattery: false };
    const leftAt = clock.now();
    for (let s = 1; s <= 92 && daemon.status().idle?.state !== "enrolled"; s++) {
      clock.advance(1000);
      for (let i = 0; i < 5; i++) await flush();
      if (s === 1) expect(daemon.status().idle?.state).toBe("waiting");
    }
    expect(daemon.status().idle?.state).toBe("enrolled");
    expect(clock.now() - leftAt).toBeGreaterThanOrEqual(89_000);
    await waitFor("un-drained heartbeat", () => (coordinator.heartbeats.at(-1)?.body as NodeHeartbeat | undefined)?.draining === false);
    coordinator.send(assignment("j3"));
    await waitFor("j3 accepted", () => coordinator.messages.some((m) => m.type === "job.accept" && m.job_id === "j3"));
    expect(lines.join("")).toMatch(/idle: enrolled → draining: owner is back: input 0.0 s ago/);
  });
});
