import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, secretKeySigner } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { loadNodeConfig } from "../src/config.js";
import { startDaemon, type DaemonHandle } from "../src/daemon.js";
import { createNodeLogger } from "../src/logger.js";
import { STAGE_OFFER_REFUSAL_FILE_NAME } from "../src/stage-host/offer-refusal.js";
import { FakeClock } from "./fake-clock.js";
import { FakeCoordinator, waitFor } from "./fake-coordinator.js";
import { ScriptedBackend } from "./scripted-backend.js";

/**
 * A daemon that offers layer spans (`stage_model`) hears `offer.refused` on its session: it logs the refusal at error
 * level and keeps it for its status and `tessera status`. Malformed refusals, as a hostile coordinator might send,
 * are ignored with a warning and the session goes on.
 */
let dir: string;
let model: string;
let clock: FakeClock;
let coordinator: FakeCoordinator;
let daemon: DaemonHandle;
let home: string;
const lines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-daemon-stage-offer-"));
  model = join(dir, "tiny.gguf");
  await makeTinyModel({ path: model, seed: 5, vocab: "bytes", blockCount: 2 });
  clock = new FakeClock(1_800_000_000_000);
  coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
  home = join(dir, "home");
  // What a daemon that was refused before left behind: a new daemon offers anew, so it is cleared at start.
  const dataDir = join(home, "data");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, STAGE_OFFER_REFUSAL_FILE_NAME), "{}");
  const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url, "idle.mode": "always", stage_model: model, stage_backend: "wasm" } });
  const { logger } = createNodeLogger({ level: "info", stdout: { write: (line: string) => lines.push(line) } });
  daemon = await startDaemon(config, {
    createBackend: async () => new ScriptedBackend(["x"]),
    logger,
    signer: secretKeySigner(generateKeyPair().secretKeyHex),
    clock,
    random: () => 0,
    detectHardware: async () => ({ cpu_cores: 2, ram_mb: 4096, gpus: [] }),
    gpuStats: async () => [],
  });
  await daemon.ready;
  await waitFor("the stage offer", () => coordinator.messages.some((m) => m.type === "stage.offer"));
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
});

const offered = () => {
  const o = coordinator.messages.find((m) => m.type === "stage.offer");
  if (o?.type !== "stage.offer") throw new Error("no offer");
  return o.shards[0]!;
};
const refusedFile = () => join(home, "data", STAGE_OFFER_REFUSAL_FILE_NAME);

/** Sends a ping after `message` and waits for its pong: the session is alive and the message was handled before it. */
async function sendThenPing(message: unknown, sentAt: number): Promise<void> {
  coordinator.socket!.send(typeof message === "string" ? message : JSON.stringify(message));
  coordinator.send({ type: "ping", sent_at: sentAt });
  await waitFor(`pong ${sentAt}`, () => coordinator.messages.some((m) => m.type === "pong" && m.sent_at === sentAt));
}

describe("a daemon told its span offer was refused", () => {
  it("starts with no refusal, the previous daemon's record cleared", () => {
    expect(daemon.status().stageOfferRefusal).toBeUndefined();
    expect(existsSync(refusedFile())).toBe(false);
  });

  it("ignores malformed refusals from a hostile coordinator, warns, and keeps serving its session", async () => {
    const o = offered();
    const good = { type: "offer.refused", model: o.model, sha256: o.sha256, code: "bad_request", param: "ms_per_layer", message: "too fast" };
    const hostile: unknown[] = [
      { ...good, message: "ok\n2026-12-05 INFO stage 1 loaded" },
      { ...good, message: "x".repeat(100_000) },
      { ...good, code: "pwned" },
      { ...good, sha256: "../../etc/passwd" },
      { ...good, model: { toString: null } },
      { ...good, param: ["ms_per_layer"] },
      { type: "offer.refused" },
      '{"type":"offer.refused","model":',
    ];
    let sentAt = 1;
    for (const message of hostile) await sendThenPing(message, sentAt++);
    expect(daemon.status().stageOfferRefusal).toBeUndefined();
    expect(existsSync(refusedFile())).toBe(false);
    expect(daemon.status().sessionOpen).toBe(true);
    const text = lines.join("");
    expect(text).toMatch(/ignored malformed coordinator message/);
    expect(text).toMatch(/ignored a session frame that is not JSON/);
    expect(text).not.toMatch(/stage 1 loaded/);
  });

  it("ignores a well-formed refusal of a file it does not offer", async () => {
    const o = offered();
    await sendThenPing({ type: "offer.refused", model: o.model, sha256: "e".repeat(64), code: "bad_request", message: "not yours" }, 100);
    expect(daemon.status().stageOfferRefusal).toBeUndefined();
    expect(lines.join("")).toMatch(/refused an offer of eeeeeeeeeeee…, a file this node does not offer/);
  });

  it("logs a refusal of its offer at error level, shows it in its status and records it for tessera status", async () => {
    const o = offered();
    const message = `offer of ${o.sha256.slice(0, 12)}: ms_per_layer 1e-9 is faster than reading a layer of ${o.bytes_per_layer} bytes allows (at least 0.001 ms)`;
    await sendThenPing({ type: "offer.refused", model: o.model, sha256: o.sha256, code: "bad_request", param: "ms_per_layer", message }, 200);
    const expected = { model: o.model, sha256: o.sha256, code: "bad_request", param: "ms_per_layer", message, advice: expect.stringContaining("tessera doctor"), at: new Date(clock.now()).toISOString() };
    expect(daemon.status().stageOfferRefusal).toEqual(expected);
    expect(JSON.parse(readFileSync(refusedFile(), "utf8"))).toEqual(expected);
    const line = lines.find((l) => l.includes("refused this node's offer"));
    expect(line).toMatch(/ERROR|error/);
    expect(line).toContain(`(bad_request, ms_per_layer): ${message}. No layer span of it will be placed on this node`);
  });
});
