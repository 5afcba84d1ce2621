import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { generateKeyPair, secretKeySigner, type NodeHeartbeat, type NodeRegister } from "@tessera/protocol";
import { loadNodeConfig } from "../src/config.js";
import { startDaemon } from "../src/daemon.js";
import { createNodeLogger } from "../src/logger.js";
import { FakeClock } from "./fake-clock.js";
import { FakeCoordinator, waitFor } from "./fake-coordinator.js";
import { ScriptedBackend } from "./scripted-backend.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A backend whose model file identity the test changes (an Ollama model pulled again, a file replaced in place). */
class ChangingFileBackend extends ScriptedBackend {
  sha256: string | undefined;
  override async listModels() {
    return (await super.listModels()).map(({ sha256: _s, ...m }) => (this.sha256 === undefined ? m : { ...m, sha256: this.sha256 }));
  }
}

/** Advances the clock until the predicate holds (a heartbeat's next timer is set only after the previous one is answered). */
async function advanceUntil(clock: FakeClock, what: string, predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !predicate(); i++) {
    clock.advance(30_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await waitFor(what, predicate);
}

describe("the daemon's served models follow the backend's file identity", () => {
  it("a model with no sha256 at registration gains it at the next heartbeat, and a replaced file is announced as the new one", async () => {
    const clock = new FakeClock(1_800_000_000_000);
    const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    cleanups.push(() => coordinator.close());
    const home = mkdtempSync(join(tmpdir(), "tessera-daemon-files-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url, "idle.mode": "always", shutdown_grace_s: 1 } });
    const backend = new ChangingFileBackend(["a"]);
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
    });
    cleanups.push(() => daemon.stop());
    await daemon.ready;
    expect((coordinator.registers[0]!.body as NodeRegister).models[0]).not.toHaveProperty("sha256");

    backend.sha256 = "a1".repeat(32);
    await advanceUntil(clock, "first heartbeat", () => coordinator.heartbeats.length >= 1);
    expect((coordinator.heartbeats[0]!.body as NodeHeartbeat).models?.[0]).toMatchObject({ id: "tiny", sha256: "a1".repeat(32) });

    backend.sha256 = "b2".repeat(32);
    await advanceUntil(clock, "a later heartbeat", () => coordinator.heartbeats.length >= 2);
    expect((coordinator.heartbeats.at(-1)!.body as NodeHeartbeat).models?.[0]).toMatchObject({ id: "tiny", sha256: "b2".repeat(32) });
    expect(lines.join("")).toMatch(/model tiny: file b2b2b2b2b2b2 \(changed in backend scripted\)/);
  });
});
